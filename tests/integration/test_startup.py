"""Start-up stays cheap: `appliance --help` and `appliance probe` (run every few seconds in every
container and pod) load no heavy library and cost under 0.3 s of CPU; each command loads what it
needs when it runs, and the control server loads the MCP SDK only when /mcp is asked
(`appliance probe --state` alone: tests/integration/test_probe.py)."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.data import REPO

HEAVY = ("pydantic", "requests", "aiohttp", "socketio", "mcp", "prometheus_client", "docker",
         "cairocffi", "pulsectl", "appliance.config", "appliance.chat", "appliance.control.api")
LOADED = """
import sys
from appliance.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(" ".join(sorted(sys.modules)))
"""


def loaded_by(*argv: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", LOADED, *argv], capture_output=True, text=True, timeout=60)
    return set(out.stdout.splitlines()[-1].split())


def cpu_seconds(*argv: str, runs: int = 5) -> float:
    """The median CPU time (user + system) of ``appliance ARGV`` over ``runs`` runs."""
    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "appliance", *argv], capture_output=True, timeout=60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


@pytest.mark.parametrize("argv", [["--help"], ["probe", "--config", "{config}"]])
def test_help_and_probe_load_nothing_heavy(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(f"agent: {{name: A}}\npaths: {{state_dir: {tmp_path}}}\n")  # not even valid
    args = [a.format(state=tmp_path, config=tmp_path / "c.yaml") for a in argv]
    modules = loaded_by(*args)
    assert "appliance.cli" in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY] == []


def test_help_and_probe_cost_under_three_tenths_of_a_second_of_cpu(tmp_path: Path) -> None:
    assert cpu_seconds("--help") < 0.3
    assert cpu_seconds("probe", "--state", str(tmp_path)) < 0.3


SERVER_WITH_MCP = """
import sys
from pathlib import Path
from appliance.control.api import ControlServer
from tests.support.control import FakeCommands

server = ControlServer(FakeCommands(), state_dir=Path(sys.argv[1]), mcp=True).start()
print("mcp" in sys.modules, flush=True)
server.close()
"""


def test_the_control_server_loads_the_mcp_sdk_only_when_mcp_is_asked(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SERVER_WITH_MCP, str(tmp_path)], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr  # main: True (about a second of CPU before going live)
