import json
import os
import stat

import pytest

from appliance.credentials import Credentials, Secret, load_credentials, save_credentials
from appliance.errors import CredentialsError


def make(token="rtk_test"):
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
    with pytest.raises(CredentialsError, match="RETAKE_ACCESS_TOKEN_FILE"):
        load_credentials(path, environ={"RETAKE_ACCESS_TOKEN_FILE": str(tmp_path / "missing")})
