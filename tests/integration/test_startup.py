"""Start-up stays cheap: `appliance --help` and `appliance probe` (run every few seconds in every
container and pod) load no heavy library and cost under 0.3 s of CPU; each command loads what it
needs when it runs. A probe answers from a real HTTP server on 127.0.0.1 with the standard
library's client."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance.core.files import StateLayout

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


@pytest.mark.parametrize("argv", [["--help"], ["probe", "--state", "{state}"], ["probe", "--config", "{config}"]])
def test_help_and_probe_load_nothing_heavy(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(f"agent: {{name: A}}\npaths: {{state_dir: {tmp_path}}}\n")  # not even valid
    args = [a.format(state=tmp_path, config=tmp_path / "c.yaml") for a in argv]
    modules = loaded_by(*args)
    assert "appliance.cli" in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY] == []


def test_help_and_probe_cost_under_three_tenths_of_a_second_of_cpu(tmp_path: Path) -> None:
    assert cpu_seconds("--help") < 0.3
    assert cpu_seconds("probe", "--state", str(tmp_path)) < 0.3


def test_probe_asks_the_running_appliance(tmp_path: Path) -> None:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/health"
            body = json.dumps({"alive": ok, "path": self.path}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        StateLayout(tmp_path).tree_json.write_text(json.dumps({"control_url": f"http://127.0.0.1:{server.server_port}"}))
        health = subprocess.run([sys.executable, "-m", "appliance", "probe", "--state", str(tmp_path)],
                                capture_output=True, text=True, timeout=30)
        ready = subprocess.run([sys.executable, "-m", "appliance", "probe", "ready", "--state", str(tmp_path)],
                               capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert health.returncode == 0 and json.loads(health.stdout) == {"alive": True, "path": "/health"}
    assert ready.returncode == 1 and json.loads(ready.stdout)["path"] == "/ready"
    nobody = subprocess.run([sys.executable, "-m", "appliance", "probe", "--state", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)
    assert nobody.returncode == 1 and "does not answer" in json.loads(nobody.stdout)["error"]


SERVER_WITH_MCP = """
import sys
from pathlib import Path
from appliance.control.api import ControlServer

class Held:
    def health(self): return {"alive": True}
    def ready(self): return False, "test"
    def status(self): return {}
    def metrics(self): return ""

server = ControlServer(Held(), state_dir=Path(sys.argv[1]), mcp=True).start()
print("mcp" in sys.modules, flush=True)
server.close()
"""


def test_the_control_server_loads_the_mcp_sdk_only_when_mcp_is_asked(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SERVER_WITH_MCP, str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr  # main: True (about a second of CPU before going live)
