"""The chaos bench's short form (CI): 75 seconds of seeded faults (one every 3-6 s) against the whole appliance
(`appliance up` with the real controller) on the sandbox. bench/chaos.py has the details; the
10-minute run's table is in the README."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.support.sandbox import NGINX_MISSING
from tests.support.tree import REPO

NEEDED = ("Xvfb", "openbox", "xterm", "pulseaudio", "ffmpeg", "scrot")


@pytest.mark.timeout(720)
@pytest.mark.skipif(NGINX_MISSING is not None, reason=NGINX_MISSING or "")
@pytest.mark.skipif(any(shutil.which(b) is None for b in NEEDED),
                    reason="the media stack is missing (scripts/setup.sh)")
def test_a_short_run_of_chaos_is_survived_without_a_leak(tmp_path):
    out = tmp_path / "chaos.json"
    result = subprocess.run([sys.executable, "bench/chaos.py", "--minutes", "1.25", "--gap", "3", "6",
                             "--comment-every", "4", "--json", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=700)
    text = result.stdout + result.stderr
    assert out.exists(), text[-4000:]
    figures = json.loads(out.read_text())
    assert figures["injected"] >= 4, text[-4000:]  # the schedule really broke things
    assert figures["survived"] == figures["injected"], text[-4000:]
    assert figures["controller_exits"]["by_itself"] == 0, text[-4000:]
    assert figures["comments"]["posted"] >= 10 and not figures["comments"]["twice"] \
        and not figures["comments"]["lost"], text[-4000:]
    assert 0 < figures["stream_starts"] <= figures["budget_per_hour"]
    assert figures["publishes_accepted"] <= figures["budget_per_hour"]
    assert figures["token_to_other_hosts"] == 0 and figures["token_in_child_environments"] == 0 \
        and figures["token_in_logs"] == 0 and figures["rtmp_keys_in_logs"] == 0
    assert figures["final_exit_status"] == 0 and result.returncode == 0, text[-4000:]
    assert "| fault | injected | met by a request | survived |" in result.stdout
