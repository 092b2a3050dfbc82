"""Every child of the appliance dies with it (defect 7): a controller killed with SIGKILL — by
supervisord after its stop grace, by the OOM killer, by hand — leaves no FFmpeg streaming and
no tool running. Real processes: a Python parent that starts the child, then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.tree import REPO, pid_alive, start_time, wait_all_ended, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")


def parent_running(code: str, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A Python process running ``code`` (which prints the child's pid, then sleeps): (it, child pid)."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(code))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, start_new_session=True)
    line = parent.stdout.readline() if parent.stdout else ""
    if not line.strip().isdigit():
        parent.kill()
        raise AssertionError(f"the parent did not start its child: {line!r} {parent.stderr.read()}")
    return parent, int(line)


def assert_child_dies_with(parent: subprocess.Popen[str], child: int, what: str) -> None:
    started = start_time(child)
    assert pid_alive(child, started), f"{what} did not run"
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    try:
        wait_all_ended({child: started}, f"{what} outlived its SIGKILLed parent", timeout=10)
    finally:
        if pid_alive(child, started):
            os.kill(child, signal.SIGKILL)


def test_encoder_ends_when_the_controller_is_killed(xvfb_display, tmp_path):
    parent, ffmpeg = parent_running(f"""
        import time
        from appliance.config import StreamConfig
        from appliance.media.encoder import Encoder
        enc = Encoder(StreamConfig(display={xvfb_display!r}, audio_source="silent", width=320, height=240))
        enc.start({str(tmp_path / 'out.flv')!r})  # a file target: FFmpeg runs until told to stop
        print(enc.pid, flush=True)
        time.sleep(120)
    """, tmp_path)
    wait_until(lambda: (tmp_path / "out.flv").exists(), 20, "FFmpeg to open its output")
    assert_child_dies_with(parent, ffmpeg, "FFmpeg")


def test_a_tool_ends_when_its_caller_is_killed(tmp_path):
    parent, _ = parent_running("""
        import os, threading, time
        from appliance.core.proc import run_tool
        threading.Thread(target=run_tool, args=(["sleep", "120"],), kwargs={"timeout": 200}, daemon=True).start()
        time.sleep(0.5)
        print(os.getpid(), flush=True)
        time.sleep(120)
    """, tmp_path)
    children = Path(f"/proc/{parent.pid}/task")
    sleepers = wait_until(lambda: [int(c) for t in children.glob("*") for c in (t / "children").read_text().split()],
                          10, "the tool to start")
    assert_child_dies_with(parent, sleepers[0], "the tool (sleep)")
