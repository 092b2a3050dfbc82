"""What a newcomer does: `appliance sandbox` in one terminal, register / verify / status in another."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.support.data import WALLET
from tests.support.media import free_port

REPO = Path(__file__).resolve().parents[2]


def appliance(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


@pytest.fixture
def sandbox_process():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "sandbox", "--no-rtmp", "--port", str(port),
                             "--viewers", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    base = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/users/live/", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError(proc.stdout.read())
    yield base, proc
    proc.send_signal(signal.SIGINT)
    proc.wait(15)


def test_register_verify_status_through_the_cli(sandbox_process, tmp_path):
    base, proc = sandbox_process
    cfg = tmp_path / "appliance.yaml"
    cfg.write_text(yaml.safe_dump({
        "agent": {"name": "CliAgent", "description": "d", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "CLI"},
        "retake": {"base_url": base, "sandbox": True},
        "paths": {"credentials": str(tmp_path / "retake" / "credentials.json"), "state_dir": str(tmp_path / "state")},
    }))
    env = {k: v for k, v in os.environ.items() if k != "RETAKE_ACCESS_TOKEN"}
    first = appliance("register", "--config", str(cfg), env=env)
    assert first.returncode == 0, first.stderr
    cred = tmp_path / "retake" / "credentials.json"
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    token = json.loads(cred.read_text())["access_token"]

    again = appliance("register", "--config", str(cfg), env=env)
    assert again.returncode == 2 and "already registered" in again.stderr and str(cred) in again.stderr

    prepare = appliance("verify", "--config", str(cfg), env=env)
    assert prepare.returncode == 0 and "post this exact message" in prepare.stdout
    assert re.search(r"Code", prepare.stdout)

    bad = appliance("verify", "https://example.com/not/a/tweet", "--config", str(cfg), env=env)
    assert bad.returncode == 2 and "not a Twitter/X status URL" in bad.stderr

    ok = appliance("verify", "https://x.com/operator/status/1234567890", "--config", str(cfg), env=env)
    assert ok.returncode == 0 and "verified" in ok.stdout

    status = appliance("status", "--json", "--config", str(cfg), env=env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["verified"] is True and data["is_live"] is False

    for result in (first, again, prepare, bad, ok, status):
        assert token not in result.stdout + result.stderr
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    assert token not in out and "agent/register" in out


def test_commands_to_a_stopped_appliance_say_so(tmp_path):
    cfg = tmp_path / "appliance.yaml"
    cfg.write_text(yaml.safe_dump({
        "agent": {"name": "CliAgent", "description": "d", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "CLI"},
        "paths": {"state_dir": str(tmp_path / "state")}}))
    result = appliance("say", "hello", "--config", str(cfg))
    assert result.returncode == 1 and "not running" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_explains_every_command():
    for command in ("register", "verify", "status", "doctor", "sandbox", "up", "live", "rehearse", "stop",
                    "say", "show", "chat"):
        result = appliance(command, "--help")
        assert result.returncode == 0 and "--config" in result.stdout


