"""The one secret resolver (appliance/core/secrets.py) and the one child environment
(appliance/core/proc.py): where a secret is found, that the tree's store is authoritative, that
a secret never reaches a child's environment, and that `appliance up` takes an exported key out
of its own /proc/<pid>/environ."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.core import proc
from appliance.core.errors import ConfigError
from appliance.core.secrets import (
    ENV_MOUNT,
    ENV_STORE,
    Secret,
    SecretRef,
    SecretStore,
    collect,
    find,
    write_store,
)

AGENT = {"name": "A", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": "11111111111111111111111111111111", "ticker": "T"}


def test_where_a_secret_is_found_first_match_wins(tmp_path: Path) -> None:
    mount = tmp_path / "run-secrets"
    mount.mkdir()
    named = tmp_path / "key.txt"
    env = {ENV_MOUNT: str(mount), "OPENAI_API_KEY": "sk-from-env"}
    assert find("OPENAI_API_KEY", environ=env).source == "the environment variable OPENAI_API_KEY"
    (mount / "OPENAI_API_KEY").write_text("sk-from-mount\n")
    hit = find("OPENAI_API_KEY", environ=env)
    assert hit.value.reveal() == "sk-from-mount" and hit.path == mount / "OPENAI_API_KEY"
    named.write_text("  sk-from-named-file  \n")
    hit = find("OPENAI_API_KEY", environ={**env, "OPENAI_API_KEY_FILE": str(named)})
    assert hit.value.reveal() == "sk-from-named-file" and "OPENAI_API_KEY_FILE" in hit.source
    assert find("NOTHING_HERE", environ=env) is None
    (mount / "EMPTY").write_text("\n")
    assert find("EMPTY", environ=env) is None  # an empty file is no secret
    assert "sk-" not in repr(hit) and "sk-" not in str(hit.value)


def test_the_trees_store_is_the_only_place_a_tree_looks(tmp_path: Path) -> None:
    """Under `appliance up` (or a rehearsal) the tree has exactly what it was handed: a token
    in the environment or on the mount is not picked up when the store does not have it."""
    store = write_store(tmp_path / "store", {"OPENAI_API_KEY": Secret("sk-handed")})
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "RETAKE_ACCESS_TOKEN").write_text("rtk_real_token_on_the_mount")
    env = {ENV_STORE: str(store), ENV_MOUNT: str(mount), "RETAKE_ACCESS_TOKEN": "rtk_real_in_env"}
    assert find("OPENAI_API_KEY", environ=env).value.reveal() == "sk-handed"
    assert find("RETAKE_ACCESS_TOKEN", environ=env) is None
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert stat.S_IMODE((store / "OPENAI_API_KEY").stat().st_mode) == 0o400
    write_store(store, {"OTHER": Secret("x" * 9)})  # rewritten: the old file goes
    assert sorted(p.name for p in store.iterdir()) == ["OTHER"]


def test_a_file_of_its_own_and_a_clear_error_for_an_unreadable_one(tmp_path: Path) -> None:
    key = tmp_path / "twitch.key"
    ref = SecretRef("simulcast-twitch", file=key, what="simulcast output twitch")
    assert find(ref, environ={}) is None  # not there: said once in the log, not fatal
    key.write_text("live_123_abc\n")
    assert find(ref, environ={"simulcast-twitch": "ignored"}).value.reveal() == "live_123_abc"
    with pytest.raises(ConfigError, match=r"OPENAI_API_KEY.*OPENAI_API_KEY_FILE=.*cannot be read"):
        find("OPENAI_API_KEY", environ={"OPENAI_API_KEY_FILE": str(tmp_path)})  # a folder
    big = tmp_path / "big"
    big.write_bytes(b"x" * 70_000)
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        find("BIG", environ={"BIG_FILE": str(big)})


def test_the_config_names_every_secret_and_the_store_reads_each_once(tmp_path: Path) -> None:
    settings = parse_config({"agent": AGENT, "chat": {"brain": {"engine": "webhook", "url": "https://example.com/hook",
                                                                "headers_env": {"Authorization": "HOOK_AUTH"}}},
                             "simulcast": {"outputs": [{"name": "tw", "url": "rtmp://live.twitch.tv/app",
                                                        "key_file": str(tmp_path / "tw.key")}]}})
    refs = settings.secret_refs()
    # the brain's (a webhook's header) and the usual LLM key's name, whichever brain runs
    assert [r.name for r in refs] == ["RETAKE_ACCESS_TOKEN", "HOOK_AUTH", "OPENAI_API_KEY", "simulcast-tw"]
    llm = parse_config({"agent": AGENT, "chat": {"brain": {"engine": "llm", "api_key_env": "MY_LLM_KEY"}}})
    assert [r.name for r in llm.secret_refs()] == ["RETAKE_ACCESS_TOKEN", "MY_LLM_KEY", "OPENAI_API_KEY"]
    (tmp_path / "tw.key").write_text("live_key_1\n")
    env = {"OPENAI_API_KEY": "sk-llm-1234567890", "HOOK_AUTH": "Bearer hook-1234567890",
           ENV_MOUNT: str(tmp_path / "none")}
    store = SecretStore.load(refs, environ=env)
    assert dict(store) == {"OPENAI_API_KEY": "sk-llm-1234567890", "HOOK_AUTH": "Bearer hook-1234567890",
                           "simulcast-tw": "live_key_1"}
    (tmp_path / "tw.key").write_text("live_key_2\n")
    env["OPENAI_API_KEY"] = "changed"
    assert store["OPENAI_API_KEY"] == "sk-llm-1234567890" and store["simulcast-tw"] == "live_key_1"  # read once
    assert sorted(store.values_list()) == sorted(["sk-llm-1234567890", "Bearer hook-1234567890", "live_key_1"])
    assert store.get("NOT_NAMED") is None and "sk-" not in repr(store)
    assert set(collect(refs, environ=env)) == {"OPENAI_API_KEY", "HOOK_AUTH", "simulcast-tw"}


# -- the one child environment -------------------------------------------------------------------

def test_a_tool_gets_its_extra_variable_on_the_allow_list_and_never_a_secret() -> None:
    """run_capture's ``extra_env`` (a display for one tool) is set on top of the allow-listed
    environment; a secret given there, or in ours, still never reaches the child."""
    seen: dict[str, str] = {}

    def runner(cmd, **kwargs):
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(cmd, 0, b"", b"")
    proc.run_capture(["true"], timeout=1, runner=runner, env={"PATH": "/bin", "OPENAI_API_KEY": "sk-x"},
                     extra_env={"DISPLAY": ":93", "RETAKE_ACCESS_TOKEN": "rtk_x"})
    assert seen == {"PATH": "/bin", "DISPLAY": ":93"}


def test_a_child_inherits_only_the_allow_list() -> None:
    parent = {"PATH": "/usr/bin:/bin", "HOME": "/home/a", "LANG": "C.UTF-8", "LC_ALL": "C", "DISPLAY": ":90",
              "XAUTHORITY": "/run/x/Xauthority", "PULSE_SERVER": "unix:/run/x/pulse", "APPLIANCE_SINK": "stream",
              "SSL_CERT_FILE": "/etc/ssl/ca.pem", "HTTPS_PROXY": "http://proxy:3128",
              "RETAKE_ACCESS_TOKEN": "rtk_x", "RETAKE_ACCESS_TOKEN_FILE": "/run/secrets/t", "OPENAI_API_KEY": "sk-x",
              "HOOK_AUTH": "Bearer x", "AWS_SECRET_ACCESS_KEY": "x", "http_proxy": "http://user:pw@proxy:3128"}
    child = proc.child_environment(parent)
    assert set(child) == {"PATH", "HOME", "LANG", "LC_ALL", "DISPLAY", "XAUTHORITY", "PULSE_SERVER",
                          "APPLIANCE_SINK", "SSL_CERT_FILE", "HTTPS_PROXY"}
