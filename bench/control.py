"""Benchmark: does the control API hold under abuse? ``/health`` latency while slow clients hold
connections, and what the flood of issue 17.5 does to it.

The control server runs in its own process (the held appliance's shape: a ControlServer with
the smallest commands), with the descriptor limit of a container (soft 1024; ``--server-nofile``).
This process raises its own soft limit within the hard one (it holds more sockets than that),
then, against 127.0.0.1 only:

  idle     /health, a new connection per request (as a probe makes them), N requests
  slow     ``--slow`` clients hold connections: each sends half a request line and headers,
           then one byte a second; a client the server closes reconnects at once (a slowloris
           that never gives up). /health measured meanwhile, and the server's CPU.
  trickle  (``--trickle-s``) one request of 62 header bytes sent a byte at a time over that
           long: must not get a 200 (the issue's case: 93 s).

/health counts as failed when it takes more than 5 s or does not answer 200. The server's CPU
is read from /proc (utime+stime) over each window, in % of one core: a spinning accept loop
shows there (the stdlib server before this change: 96 % of a core).

    .venv/bin/python bench/control.py --slow 1000 --seconds 30 --trickle-s 93
    .venv/bin/python bench/control.py --repo /path/to/another/checkout   # the same against it

Prints one table; exits 1 when the slow window's p99 is over 1 s, any /health failed, or the
trickled request got a 200.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
SERVER = textwrap.dedent("""
    import logging, sys
    from pathlib import Path
    from appliance.control.api import ControlServer
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # what the appliance logs, to count it

    class Commands:  # the smallest commands: /health and /ready answer, everything else refuses
        def health(self): return {"alive": True, "state": "held"}
        def ready(self): return False, "bench"
        def status(self): return {"state": "held"}
        def __getattr__(self, name):
            def refuse(*args, **kwargs):
                raise RuntimeError("not in the bench")
            return refuse

    server = ControlServer(Commands(), state_dir=Path(sys.argv[1]), port=0).start()
    print(server.port, flush=True)
    sys.stdin.read()  # until the bench closes our stdin
    server.close()
""")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def health_once(port: int, timeout: float = 5.0) -> tuple[float, bool]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        ok = conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        ok = False
    finally:
        conn.close()
    return time.monotonic() - started, ok


def measure_health(port: int, seconds: float, every_s: float = 0.1) -> tuple[list[float], int]:
    """(latencies of the answered requests, failures) over ``seconds``."""
    latencies, failed = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        took, ok = health_once(port)
        if ok:
            latencies.append(took)
        else:
            failed += 1
        time.sleep(every_s)
    return latencies, failed


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Slowloris:
    """``count`` connections that each send a partial request and then a byte a second,
    reconnecting whenever the server closes them: an asyncio loop in a process of its own, so
    its work never delays the /health client's clock (counters in shared memory)."""

    def __init__(self, port: int, count: int) -> None:
        import multiprocessing
        self.port, self.count = port, count
        self._stop = multiprocessing.Event()
        self._open = multiprocessing.Value("i", 0)
        self._closed = multiprocessing.Value("i", 0)
        self._failed = multiprocessing.Value("i", 0)
        self.process = multiprocessing.Process(target=self._run, daemon=True)

    @property
    def open(self) -> int:
        return int(self._open.value)

    @property
    def closed_by_server(self) -> int:
        return int(self._closed.value)

    @property
    def connect_failures(self) -> int:
        return int(self._failed.value)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.count)))

    def _add(self, counter: Any, n: int) -> None:
        with counter.get_lock():
            counter.value += n

    async def _client(self, i: int) -> None:
        await asyncio.sleep(i * 0.002)  # ramp up over ~2 s
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
            except (OSError, TimeoutError):
                self._add(self._failed, 1)
                await asyncio.sleep(0.5)
                continue
            self._add(self._open, 1)
            try:
                writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while not self._stop.is_set():
                    try:
                        got = await asyncio.wait_for(reader.read(1), 1.0)
                    except TimeoutError:
                        writer.write(b"X")  # one more byte of a header that never ends
                        continue
                    if not got:
                        self._add(self._closed, 1)
                        break
            except OSError:
                self._add(self._closed, 1)
            finally:
                self._add(self._open, -1)
                writer.close()

    def start(self) -> Slowloris:
        self.process.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self.process.join(15)
        if self.process.is_alive():
            self.process.kill()


def trickled(port: int, seconds: float) -> str:
    """62 header bytes of a valid /health request, one at a time over ``seconds``: what came back."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: 0123456789ab\r\n\r\n"
    assert len(head) == 62
    every = seconds / len(head)
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=seconds + 10) as sock:
        sent = 0
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(every)
        except OSError:
            return f"closed by the server after {sent} of 62 bytes"
        try:
            answer = sock.recv(200)
        except OSError:
            answer = b""
    return answer.split(b"\r\n", 1)[0].decode(errors="replace") or f"closed by the server after {sent} of 62 bytes"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=1000, help="slow clients holding connections (default 1000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each window (default 30)")
    parser.add_argument("--trickle-s", type=float, default=0.0, help="trickle one request over this long (0: skip)")
    parser.add_argument("--server-nofile", type=int, default=1024, help="the server's descriptor limit (1024)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose server is measured")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.slow + 512)) if hard != resource.RLIM_INFINITY else args.slow + 512
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    def server_limits() -> None:
        _soft, server_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.server_nofile, server_hard), server_hard))

    state = Path(tempfile.mkdtemp(prefix="bench-control-"))
    server_log = state / "server.log"
    with open(server_log, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(state)], cwd=args.repo, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log_file, text=True, preexec_fn=server_limits,
                                env=dict(os.environ, PYTHONPATH=str(args.repo)))
    rows: list[tuple[str, str]] = []
    verdict = 0
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first.strip().isdigit():
            print(server_log.read_text(errors="replace")[-2000:], file=sys.stderr)
            return 2
        port = int(first)
        print(f"server pid {proc.pid} on port {port} ({args.repo}), its descriptor limit {args.server_nofile}; "
              f"this process {want}", flush=True)

        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        idle, idle_failed = measure_health(port, min(10.0, args.seconds))
        idle_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
        rows.append(("idle", f"/health p50 {pct(idle, 50) * 1000:.1f} ms, p99 {pct(idle, 99) * 1000:.1f} ms, "
                             f"{len(idle)} ok, {idle_failed} failed; server CPU {idle_cpu:.1f} % of a core"))

        swarm = Slowloris(port, args.slow).start()
        time.sleep(5.0)  # ramped up
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        fds = []
        sampler_stop = threading.Event()

        def sample() -> None:
            while not sampler_stop.wait(1.0):
                fds.append(open_fds(proc.pid))
        threading.Thread(target=sample, daemon=True).start()
        slow, slow_failed = measure_health(port, args.seconds)
        slow_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
        sampler_stop.set()
        rows.append((f"slow x{args.slow}",
                     f"/health p50 {pct(slow, 50) * 1000:.1f} ms, p99 {pct(slow, 99) * 1000:.1f} ms, max "
                     f"{max(slow, default=float('nan')) * 1000:.0f} ms, {len(slow)} ok, {slow_failed} failed; "
                     f"server CPU {slow_cpu:.1f} % of a core, its open descriptors median "
                     f"{statistics.median(fds) if fds else -1:.0f} max {max(fds, default=-1)}; slow clients open "
                     f"{swarm.open}, closed by the server {swarm.closed_by_server}, connects failed "
                     f"{swarm.connect_failures}"))
        if args.trickle_s:
            answer = trickled(port, args.trickle_s)
            rows.append((f"trickle {args.trickle_s:.0f} s", f"62 header bytes over {args.trickle_s:.0f} s: {answer}"))
            if " 200" in answer:
                verdict = 1
        swarm.close()
        if slow_failed or idle_failed or not slow or pct(slow, 99) > 1.0:
            verdict = 1
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    lines = server_log.read_text(errors="replace").splitlines()
    rows.append(("server log", f"{len(lines)} lines, {sum('Traceback' in line for line in lines)} tracebacks"))
    print()
    for name, text in rows:
        print(f"{name:<14} {text}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
