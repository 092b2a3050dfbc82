"""Benchmark: what one exec probe (`appliance probe health --state DIR`, what Kubernetes and
compose run every few seconds per agent) costs in CPU-seconds.

A control server (the smallest commands) runs in its own process; the probe is run ``--runs``
times as a child, the same command the manifests run, and its CPU (user + system, from
``getrusage(RUSAGE_CHILDREN)``) and wall time are summed. ``--repo`` measures another checkout
the same way (its server, its probe).

    .venv/bin/python bench/probe.py --runs 20
    .venv/bin/python bench/probe.py --runs 20 --repo /path/to/another/checkout

At the Kubernetes probe periods of appliance/fleet/kubernetes.py (liveness every 20 s; the
startup probe every 5 s only until the first success) the steady cost is one probe per 20 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from appliance.control.api import ControlServer

    class Commands:
        def health(self): return {"alive": True}
        def ready(self): return True, "ok"
        def status(self): return {"state": "live"}
        def __getattr__(self, name):
            def refuse(*args, **kwargs):
                raise RuntimeError("not in the bench")
            return refuse

    server = ControlServer(Commands(), state_dir=Path(sys.argv[1]), port=0).start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.close()
""")
LIVENESS_PERIOD_S = 20.0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repo", type=Path, default=ROOT)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-probe-"))
    env = dict(os.environ, PYTHONPATH=str(args.repo))
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(state)], cwd=args.repo, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        server.stdout.readline()
        command = [sys.executable, "-m", "appliance", "probe", "health", "--state", str(state)]
        subprocess.run(command, cwd=args.repo, env=env, capture_output=True, check=True, timeout=30)  # warm caches
        cpu, walls = [], []
        for _ in range(args.runs):
            before, started = children_cpu(), time.monotonic()
            done = subprocess.run(command, cwd=args.repo, env=env, capture_output=True, text=True, timeout=30)
            walls.append(time.monotonic() - started)
            cpu.append(children_cpu() - before)
            if done.returncode != 0:
                print(f"probe failed: {done.stdout} {done.stderr}", file=sys.stderr)
                return 1
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(15)
    median = statistics.median(cpu)
    print(f"{args.repo}: {args.runs} probes, CPU per probe median {median:.3f} s (min {min(cpu):.3f}, "
          f"max {max(cpu):.3f}), wall median {statistics.median(walls):.3f} s; at one probe per "
          f"{LIVENESS_PERIOD_S:.0f} s: {median / LIVENESS_PERIOD_S * 100:.2f} % of a core per agent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
