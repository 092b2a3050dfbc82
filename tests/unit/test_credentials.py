import json
import logging
import os
import stat

import pytest

from appliance.core.errors import CredentialsError
from appliance.retake.credentials import (
    Credentials,
    Secret,
    load_credentials,
    resolve_credentials,
    save_credentials,
    token_from_environment,
    without_token_environment,
)


def make(token="rtk_test"):  # noqa: S107 (a test token)
    return Credentials(access_token=Secret(token), agent_name="A", agent_id="agent_1", userDbId="user_1",
                       wallet_address="w", ticker="T")


def test_saved_mode_600_in_700_folder_with_reference_fields(tmp_path):
    path = tmp_path / "retake" / "credentials.json"
    save_credentials(path, make())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert set(json.loads(path.read_text())) == {"access_token", "agent_name", "agent_id", "userDbId",
                                                  "wallet_address", "ticker", "token_address", "token_ticker"}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".credentials.")]


def test_env_token_wins_and_secret_never_prints(tmp_path):
    path = tmp_path / "c.json"
    save_credentials(path, make("rtk_from_file"))
    creds = load_credentials(path, environ={"RETAKE_ACCESS_TOKEN": "rtk_from_env"})
    assert creds.access_token.reveal() == "rtk_from_env" and creds.source == "env"
    assert "rtk_" not in repr(creds) and "rtk_" not in str(creds.access_token)
    assert load_credentials(path, environ={}).access_token.reveal() == "rtk_from_file"


def test_loose_mode_is_tightened_and_broken_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.json"
    save_credentials(path, make())
    os.chmod(path, 0o644)
    load_credentials(path, environ={})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match="unreadable credentials"):
        load_credentials(path, environ={})
    assert load_credentials(tmp_path / "none.json") is None


def test_token_file_from_the_environment(tmp_path):
    path = tmp_path / "c.json"
    save_credentials(path, make("rtk_from_file"))
    secret = tmp_path / "token"
    secret.write_text("rtk_from_secret_volume\n")
    creds = load_credentials(path, environ={"RETAKE_ACCESS_TOKEN_FILE": str(secret)})
    assert creds.access_token.reveal() == "rtk_from_secret_volume" and creds.source == "env"


def test_a_token_file_that_is_not_mounted_is_no_environment_token(tmp_path, caplog):
    """Kubernetes with an optional Secret that is absent: RETAKE_ACCESS_TOKEN_FILE names a file
    that does not exist. That is "no token from the environment" (said once), not a fatal error."""
    path = tmp_path / "c.json"
    save_credentials(path, make("rtk_from_file"))
    environ = {"RETAKE_ACCESS_TOKEN_FILE": str(tmp_path / "secret" / "missing")}
    with caplog.at_level(logging.INFO, logger="appliance.secrets"):
        for _ in range(3):
            creds = load_credentials(path, environ=environ)
            assert creds.access_token.reveal() == "rtk_from_file" and creds.source == "file"
            assert token_from_environment(environ) is None
    said = [r.getMessage() for r in caplog.records if "does not exist" in r.getMessage()]
    assert len(said) == 1 and "optional secret not mounted" in said[0]
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(CredentialsError, match="RETAKE_ACCESS_TOKEN_FILE"):  # there but unreadable: an error
        load_credentials(path, environ={"RETAKE_ACCESS_TOKEN_FILE": str(folder)})


def test_one_resolver_for_every_command(tmp_path):
    """Environment token, file named by the environment, the config's credentials file (the
    sandbox's own for a sandbox config): one answer, used by live, cli, doctor, register, rehearse."""
    from appliance.config import parse_config
    agent = {"name": "A", "description": "d", "image_url": "https://example.com/a.png",
             "wallet_address": "11111111111111111111111111111111", "ticker": "T"}
    sandbox = parse_config({"agent": agent, "paths": {"state_dir": str(tmp_path / "state")},
                            "retake": {"base_url": "http://127.0.0.1:1/api/v1", "sandbox": True}})
    found = resolve_credentials(sandbox, environ={})
    assert found.path == tmp_path / "state" / "sandbox" / "credentials.json" and found.token is None
    with pytest.raises(CredentialsError, match="appliance register"):
        found.require_token()
    only_env = resolve_credentials(sandbox, environ={"RETAKE_ACCESS_TOKEN": "rtk_env"})
    assert only_env.saved is None and only_env.token.reveal() == "rtk_env" and "environment only" in only_env.describe()
    save_credentials(found.path, make("rtk_file"))
    both = resolve_credentials(sandbox, environ={"RETAKE_ACCESS_TOKEN": "rtk_env"})
    assert both.token.reveal() == "rtk_env" and both.saved.agent_name == "A"
    assert resolve_credentials(sandbox, environ={}).token.reveal() == "rtk_file"
    assert "rtk_" not in repr(both) and "rtk_" not in both.describe()
    assert without_token_environment({"RETAKE_ACCESS_TOKEN": "x", "RETAKE_ACCESS_TOKEN_FILE": "/y",
                                      "PATH": "/bin"}) == {"PATH": "/bin"}
