"""`appliance probe --state DIR` (the containers' and Kubernetes' health check): it answers for
the running appliance, and it loads nothing but the standard library (it ran ~0.45 CPU-s with
the config, pydantic and requests loaded; `bench/probe.py` measures it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from appliance.control.api import ControlServer
from tests.support.control import FakeCommands
from tests.support.tree import REPO

HEAVY = ("pydantic", "requests", "yaml", "aiohttp", "mcp", "prometheus_client", "urllib3", "http")


def probe(kind: str, state: Path) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "appliance", "probe", kind, "--state", str(state)],
                         capture_output=True, text=True, timeout=30, cwd=REPO)
    return out.returncode, json.loads(out.stdout or "{}")


def test_the_probe_answers_for_the_running_appliance(tmp_path: Path) -> None:
    commands = FakeCommands()
    server = ControlServer(commands, state_dir=tmp_path, port=0).start()
    try:
        assert probe("health", tmp_path) == (0, {"alive": True, "state": "live"})
        commands.state = "waiting"
        code, body = probe("ready", tmp_path)
        assert code == 1 and body == {"ready": False, "reason": "state waiting"}
    finally:
        server.close()
    code, body = probe("health", tmp_path)
    assert code == 1 and "not running" in body["error"]


def test_the_probe_loads_only_the_standard_library(tmp_path: Path) -> None:
    code = ("import sys\n"
            "from appliance.cli import main\n"
            f"main(['probe', 'health', '--state', {str(tmp_path)!r}])\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
