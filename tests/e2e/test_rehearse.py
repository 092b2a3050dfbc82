"""The README's first command ends in `appliance rehearse`: it must go live and clean up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.sandbox import NGINX_MISSING
from tests.support.tree import wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(NGINX_MISSING is not None, reason=NGINX_MISSING or "")
def test_rehearsal_goes_live_chats_records_and_stops(tmp_path):
    data = yaml.safe_load((REPO / "config.example.yaml").read_text())
    # the example leaves it commented
    data["paths"] = {**(data.get("paths") or {}), "state_dir": str(tmp_path / "state")}
    cfg = tmp_path / "appliance.yaml"
    cfg.write_text(yaml.safe_dump(data))
    # the operator's real token, both ways it can be given: neither may reach the sandbox (the
    # rehearsal registers its own agent there; a real token would win and be refused with 401)
    real = tmp_path / "real-token"
    real.write_text("rtk_the_real_token_from_a_mounted_secret\n")
    env = dict(os.environ, RETAKE_ACCESS_TOKEN="rtk_the_real_token_from_the_shell",
               RETAKE_ACCESS_TOKEN_FILE=str(real))
    log = tmp_path / "rehearse.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "rehearse", "--config", str(cfg),
                                 "--seconds", "40"], stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
        wait_until(lambda: b"initial thumbnail uploaded" in log.read_bytes() or proc.poll() is not None, 120,
                   "the rehearsal to go live")
        # a newcomer's next try: the commands find the appliance the rehearsal started
        status = subprocess.run([sys.executable, "-m", "appliance", "status", "--config", str(cfg)],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert status.returncode == 0 and "status from the running appliance" in status.stdout, status
        assert "live" in status.stdout, status.stdout
        shown = subprocess.run([sys.executable, "-m", "appliance", "show", "hello from a newcomer",
                                "--config", str(cfg)], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert shown.returncode == 0 and '"shown": true' in shown.stdout, shown
        returncode = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
    out = log.read_text(errors="replace")
    assert returncode == 0, out[-3000:]
    assert "initial thumbnail uploaded" in out
    assert "chat | MyAgent: I'm live. What should we explore today?" in out
    assert "rehearsal: recording " in out and ".flv" in out
    recordings = list((tmp_path / "state" / "rehearsal" / "recordings").glob("*.flv"))
    assert recordings and max(r.stat().st_size for r in recordings) > 100_000
    assert "final stats: status=stopped" in out
    assert "rtk_the_real_token" not in out
