"""Config validation: every bad key is named with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import load_config, parse_config
from appliance.core import base58
from appliance.core.errors import ConfigError

AGENT = {"name": "TestAgent", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": "11111111111111111111111111111111", "ticker": "TEST"}
REPO = Path(__file__).resolve().parents[2]


def bad(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg.yaml")
    return str(info.value)


def test_example_config_is_valid_and_documents_every_section():
    settings = load_config(REPO / "config.example.yaml")
    text = (REPO / "config.example.yaml").read_text()
    for section in type(settings).model_fields:
        assert f"{section}:" in text, section
        sub = getattr(settings, section)
        for key in getattr(type(sub), "model_fields", {}):
            assert f"{key}:" in text, f"{section}.{key} undocumented"


@pytest.mark.parametrize("change, expected", [
    ({"ticker": "ELEVENCHARS"}, "agent.ticker: at most 10 characters"),
    ({"wallet_address": "0OIl"}, "agent.wallet_address: wallet address is not base58"),
    ({"wallet_address": "abc"}, "agent.wallet_address: a Solana public key decodes to 32 bytes"),
    ({"image_url": "http://example.com/a.png"}, "agent.image_url: must be a public https:// URL"),
    ({"name": "has space"}, "agent.name: letters, digits"),
])
def test_agent_errors_name_the_key(change, expected):
    assert expected in bad({"agent": {**AGENT, **change}})


def test_unknown_and_missing_keys():
    assert "colour: unknown key" in bad({"agent": AGENT, "colour": "red"})
    assert "stream.fps: unknown key" in bad({"agent": AGENT, "stream": {"fps": 30}})
    assert "agent.ticker: required" in bad({"agent": {k: v for k, v in AGENT.items() if k != "ticker"}})


def test_token_only_goes_to_retake_or_an_explicit_sandbox():
    assert "goes to retake.tv only" in bad({"agent": AGENT, "retake": {"base_url": "https://evil.example/api/v1"}})
    assert "set retake.sandbox: true" in bad({"agent": AGENT, "retake": {"base_url": "http://127.0.0.1:1/api/v1"}})
    assert "only reached over https" in bad({"agent": AGENT, "retake": {"base_url": "http://retake.tv/api/v1"}})
    ok = parse_config({"agent": AGENT, "retake": {"base_url": "http://127.0.0.1:9/api/v1", "sandbox": True}})
    assert ok.retake.base_url == "http://127.0.0.1:9/api/v1"


def test_thumbnail_interval_is_clamped_to_two_to_five_minutes():
    assert parse_config({"agent": AGENT, "stream": {"thumbnail_interval_s": 10}}).stream.thumbnail_interval_s == 120
    assert parse_config({"agent": AGENT, "stream": {"thumbnail_interval_s": 900}}).stream.thumbnail_interval_s == 300


def test_chat_limit_bound():
    assert "chat.limit: input should be less than or equal to 100" in bad({"agent": AGENT, "chat": {"limit": 500}})


def test_yaml_errors_and_missing_file(tmp_path):
    broken = tmp_path / "c.yaml"
    broken.write_text("agent: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line 2 is not valid YAML|is not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_cli_exit_code_2_and_one_line_for_bad_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agent:\n  name: A\n  description: d\n  image_url: https://x/a.png\n"
                   "  wallet_address: '11111111111111111111111111111111'\n  ticker: WAYTOOLONGTICKER\n")
    assert main(["register", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "agent.ticker: at most 10 characters" in err[0]


def test_base58():
    assert base58.decode("11111111111111111111111111111111") == bytes(32)
    assert len(base58.decode("So11111111111111111111111111111111111111112")) == 32
    assert base58.decode(base58.encode(b"\x00\x00\xff" * 11)) == b"\x00\x00\xff" * 11
    assert base58.solana_key_problem("1" * 45) == ("a Solana public key decodes to 32 bytes, "
                                                  "this one is 45 characters long")
    with pytest.raises(ValueError, match="not base58"):
        base58.decode("0OIl")


def test_sandbox_credentials_never_default_to_the_real_file(tmp_path):
    real = parse_config({"agent": AGENT, "paths": {"state_dir": str(tmp_path)}})
    sand = parse_config({"agent": AGENT, "paths": {"state_dir": str(tmp_path)},
                         "retake": {"base_url": "http://127.0.0.1:9/api/v1", "sandbox": True}})
    assert sand.credentials_path() == tmp_path / "sandbox" / "credentials.json"
    assert real.credentials_path() != sand.credentials_path()
