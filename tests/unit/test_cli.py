"""The command line without a running appliance: where its options may stand."""

from __future__ import annotations

import yaml

from tests.support.data import WALLET


def test_config_before_the_command_as_docker_and_kubectl_take_options(tmp_path, capsys):
    from appliance.cli import main
    cfg = tmp_path / "before.yaml"
    cfg.write_text(yaml.safe_dump({
        "agent": {"name": "CliAgent", "description": "d", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "CLI"},
        "paths": {"state_dir": str(tmp_path / "before-state")}}))
    assert main(["--config", str(cfg), "say", "hello"]) == 1  # read the config: nothing runs there
    before = capsys.readouterr().err
    assert "not running" in before and str(tmp_path / "before-state") in before
    assert main(["say", "hello", "--config", str(cfg)]) == 1  # after the command, as before
    assert str(tmp_path / "before-state") in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "other.yaml"), "say", "x", "--config", str(cfg)]) == 1  # nearest wins
    assert str(tmp_path / "before-state") in capsys.readouterr().err
