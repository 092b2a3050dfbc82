"""Benchmark: audio against video at every stream start, and over a long stream.

A private Xvfb and PulseAudio (tests/support/media.py), the appliance's encoder
(:class:`appliance.media.encoder.Encoder`, the command ``appliance live`` runs) writing FLV,
and a stimulus (tests/support/avsync.py): a window turns white when a beep is heard in the
sink (the beep played by the voice's PulsePlayer at its ``audible_at``). Each pair's offset,
picture minus sound, is read back from the recording; a start's figure is the median of its
pairs. Goal (issue 19): the same offset at every start, spread <= 15 ms over 5 starts.

    .venv/bin/python bench/avsync.py --starts 6                 # per-start medians, spread
    .venv/bin/python bench/avsync.py --starts 6 --before        # the same, alternating with the command before the fix
    .venv/bin/python bench/avsync.py --convergence              # offset against seconds since the start
    .venv/bin/python bench/avsync.py --minutes 20               # one stream: a pair every 10 s, drift
    .venv/bin/python bench/avsync.py --overload 15              # encoders beside a CPU hog: fall behind, come back

``--overload S``: four encoders on one scrolling screen, two with the appliance's command and
two with the one before the fix (a 1/fps time base, whose grid dropped late grabs), while
three busy loops take the CPU for S seconds; every 4 s each encoder's lag (wall time minus
media time since the start) and RSS. Both must come back to ~0 lag once the hog stops.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.media.encoder import Encoder, EncoderStats, apply_progress, build_command  # noqa: E402
from appliance.media.settings import StreamConfig  # noqa: E402
from tests.support.avsync import StartResult, before_sync_command, play_cues, read_pairs, spread  # noqa: E402
from tests.support.media import moving_content, start_pulseaudio, start_xvfb, stop_process  # noqa: E402


def ms(values: list[float]) -> str:
    return "[" + ", ".join(f"{v * 1000:+.0f}" for v in values) + "]"


class BeforeEncoder(Encoder):
    """The encoder with the command it ran before the offset was fixed."""

    def start(self, target: str) -> None:  # the command is built inside Encoder.start
        import appliance.media.encoder as module
        real = module.build_command
        with mock.patch.object(module, "build_command", lambda *a, **k: before_sync_command(real(*a, **k))):
            super().start(target)


def one_start(display: str, work: Path, name: str, pairs: int, settle_s: float, before: bool) -> StartResult:
    out = work / f"{name}.flv"
    enc = (BeforeEncoder if before else Encoder)(StreamConfig(display=display))
    enc.start(str(out))
    try:
        deadline = time.monotonic() + 30
        while enc.stats().out_time_s < settle_s:
            if time.monotonic() > deadline:
                raise SystemExit(f"no media after 30 s: {enc.last_stderr()[-5:]}")
            time.sleep(0.1)
        cues = play_cues(display, "stream", pairs, work)
        time.sleep(0.5)
    finally:
        enc.stop()
    return read_pairs(out, cues)


def starts(display: str, work: Path, args: argparse.Namespace) -> None:
    kinds = ["after", "before"] if args.before else ["after"]
    results: dict[str, list[StartResult]] = {k: [] for k in kinds}
    for i in range(args.starts):
        for kind in kinds if i % 2 == 0 else kinds[::-1]:
            result = one_start(display, work, f"{kind}-{i}", args.pairs, args.settle, kind == "before")
            results[kind].append(result)
            print(f"start {i + 1} {kind:6s}: pairs (ms) {ms([p.offset for p in result.pairs])}  viewer median "
                  f"{result.median * 1000:+.0f}, stream offset {result.offset * 1000:+.1f}", flush=True)
    for kind, runs in results.items():
        own, viewer = [r.offset for r in runs], [r.median for r in runs]
        print(f"{kind:6s}: stream offset per start (ms) {ms(own)}: median {statistics.median(own) * 1000:+.0f}, "
              f"spread {spread(own) * 1000:.0f} ms over {len(own)} starts; viewer medians {ms(viewer)}, "
              f"spread {spread(viewer) * 1000:.0f} ms")


def convergence(display: str, work: Path, args: argparse.Namespace) -> None:
    """Pairs from the first media second on: when does the offset settle?"""
    for i in range(args.starts):
        out = work / f"conv-{i}.flv"
        enc = Encoder(StreamConfig(display=display))
        enc.start(str(out))
        try:
            while enc.stats().out_time_s < 0.5:
                time.sleep(0.05)
            began = time.time()
            cues = play_cues(display, "stream", args.pairs, work, gap_s=0.3)
            time.sleep(0.5)
        finally:
            enc.stop()
        result = read_pairs(out, cues)
        print(f"start {i + 1}: " + ", ".join(f"{c.audible - began + 0.5:.1f}s {p.offset * 1000:+.0f}"
                                             for c, p in zip(cues, result.pairs, strict=True)), flush=True)


def long_run(display: str, work: Path, args: argparse.Namespace) -> None:
    """One stream for ``--minutes``: a pair every 10 s; the offset at the start against the end."""
    out = work / "long.flv"
    enc = Encoder(StreamConfig(display=display))
    enc.start(str(out))
    stop = threading.Event()
    cues = []
    try:
        while enc.stats().out_time_s < args.settle:
            time.sleep(0.1)
        began = time.time()
        while time.time() - began < args.minutes * 60:
            cues += play_cues(display, "stream", 1, work, gap_s=0.0, stop=stop)
            time.sleep(max(0.0, 10.0 - (time.time() - cues[-1].audible)))
            if enc.health().state != "running":
                raise SystemExit(f"encoder {enc.health()}")
        time.sleep(0.5)
    finally:
        enc.stop()
    pairs = [p.offset for p in read_pairs(out, cues).pairs]
    times = [(c.audible - began) / 60 for c in cues]
    first = [p for t, p in zip(times, pairs, strict=True) if t < 2]
    last = [p for t, p in zip(times, pairs, strict=True) if t > args.minutes - 2]
    slope = statistics.linear_regression(times, pairs).slope if len(pairs) > 2 else float("nan")
    print(f"{len(pairs)} pairs over {args.minutes:g} min: median {statistics.median(pairs) * 1000:+.1f} ms, "
          f"spread {spread(pairs) * 1000:.0f} ms; first 2 min {statistics.median(first) * 1000:+.1f}, "
          f"last 2 min {statistics.median(last) * 1000:+.1f} ms; trend {slope * 1000 * 60:+.2f} ms/h")


def overload(display: str, work: Path, args: argparse.Namespace) -> None:
    """Four encoders (after and before the fix) on moving content, three CPU hogs for a while."""
    with moving_content(work / "c.log", display):
        _overload(display, work, args)


def _overload(display: str, work: Path, args: argparse.Namespace) -> None:
    kinds = ["after", "before", "after", "before"]
    procs: list[tuple[str, subprocess.Popen[bytes], EncoderStats, float]] = []
    hogs: list[subprocess.Popen[bytes]] = []

    def rss(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
        return 0

    try:
        for i, kind in enumerate(kinds):
            cmd = build_command(StreamConfig(display=display), str(work / f"load-{i}.flv"), audio="pulse")
            cmd = before_sync_command(cmd) if kind == "before" else cmd
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            stats = EncoderStats()

            def read(proc: subprocess.Popen[bytes] = proc, stats: EncoderStats = stats) -> None:
                assert proc.stdout is not None
                for raw in iter(proc.stdout.readline, b""):
                    key, _, value = raw.decode().strip().partition("=")
                    apply_progress(stats, key, value)

            threading.Thread(target=read, daemon=True).start()
            procs.append((kind, proc, stats, time.time()))
        time.sleep(8)
        base = [time.time() - t0 - st.out_time_s for _, _, st, t0 in procs]
        began = time.time()
        lags: dict[str, list[float]] = {"after": [], "before": []}
        for step in range(int(args.overload + 40)):
            elapsed = time.time() - began
            if step == 2:
                hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
            if hogs and elapsed > 2 + args.overload:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
                hogs = []
            if step % 4 == 0:
                now = [time.time() - t0 - st.out_time_s - b for (_, _, st, t0), b in zip(procs, base, strict=True)]
                print(f"t={elapsed:5.1f} s hog {'on ' if hogs else 'off'} " + "  ".join(
                    f"{k}: lag {lag:5.2f} s, {rss(p.pid)} MB" for (k, p, _, _), lag in zip(procs, now, strict=True)),
                    flush=True)
                for (kind, _, _, _), lag in zip(procs, now, strict=True):
                    lags[kind].append(lag)
            time.sleep(1)
        for kind, values in lags.items():
            print(f"{kind}: largest lag {max(values):.2f} s, at the end {statistics.median(values[-3:]):.2f} s")
    finally:
        for hog in hogs:
            hog.kill()
        for _, proc, _, _ in procs:
            try:
                assert proc.stdin is not None
                proc.stdin.write(b"q")
                proc.stdin.flush()
                proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=6, help="stream starts")
    parser.add_argument("--pairs", type=int, default=8, help="flash+beep pairs per start")
    parser.add_argument("--settle", type=float, default=5.0, help="media seconds before the first pair")
    parser.add_argument("--before", action="store_true", help="alternate with the command before the fix")
    parser.add_argument("--convergence", action="store_true", help="pairs from the first second on")
    parser.add_argument("--minutes", type=float, default=0.0, help="one long stream instead of starts")
    parser.add_argument("--overload", type=float, default=0.0, metavar="S", help="the CPU hog test, hog for S s")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-avsync-"))
    display, xvfb, _ = start_xvfb()
    server, pulse = start_pulseaudio(work / "pulse")
    os.environ["PULSE_SERVER"] = server
    print(f"display {display}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    try:
        if args.overload:
            overload(display, work, args)
        elif args.minutes:
            long_run(display, work, args)
        elif args.convergence:
            convergence(display, work, args)
        else:
            starts(display, work, args)
    finally:
        stop_process(pulse)
        stop_process(xvfb)
    print(f"load {os.getloadavg()[0]:.1f}; recordings in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
