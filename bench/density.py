"""Benchmark: how many appliances one host carries, and where their CPU goes.

For N = 1, 2, 3, ... it starts N whole appliances (`appliance up`: Xvfb, PulseAudio, openbox,
the content window, the controller and its FFmpeg) as bare process trees on this host, each
with its own display and control port (chosen free at start), all live against one local
sandbox whose simulated viewers comment every ``--comment-every`` seconds per agent, so every
screen scrolls. Once all N are live it waits ``--settle`` seconds (start-up drops are not
counted), then measures for ``--seconds``:

- each encoder's speed over the window (media seconds encoded / wall seconds, from FFmpeg's
  progress and its start time) and the frames it dropped in the window (/metrics);
- CPU (cores: CPU-seconds per wall second, /proc utime+stime of every process of every tree)
  split into FFmpeg, Xvfb, renderer (the content window: xterm/tail, or a scene renderer),
  Python (controller, supervisord, `appliance up`) and the rest (PulseAudio, openbox, shells);
- RSS of each whole tree (MB, /proc VmRSS summed);
- what a viewer gets: the gaps between video frames in each stream's recording at the ingest
  (ffprobe) over the same window — the longest, and how many exceed 1.5 frames.

A level holds when every encoder has speed >= 0.99, 0 dropped frames in the window and no gap
of 2 frames or more in its recording (no frame slot without a new frame); the host's density is
the highest N that holds. It stops at the first level that fails (or at
``--max-n``). With ``--options`` it also captures 10 s of a live screen losslessly and encodes
it with the appliance's FFmpeg command as the skill's reference has it (x264 threads left to
FFmpeg) and with cheap variants (threads, scaler), printing CPU-seconds
per media second and SSIM against the source, so a variant is a win only at equal quality.

    .venv/bin/python bench/density.py --max-n 6 --seconds 60 --options   # the real measurement
    .venv/bin/python bench/density.py --max-n 2 --seconds 15 --settle 5   # a quick check

The figures only mean something on a quiet machine: other work on the host steals CPU from the
encoders and lowers the density found.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from appliance.config import load_config  # noqa: E402
from appliance.control.client import ControlClient  # noqa: E402
from appliance.core.errors import ApplianceError  # noqa: E402
from appliance.core.files import RuntimeLayout, StateLayout  # noqa: E402
from appliance.media.settings import StreamConfig  # noqa: E402
from appliance.rehearse import SIMULATED_TWEET  # noqa: E402
from appliance.retake.client import RetakeClient  # noqa: E402
from appliance.retake.verification import register_agent  # noqa: E402
from appliance.sandbox import Sandbox  # noqa: E402
from tests.support.tree import descendants  # noqa: E402 - the one /proc walk (tests/support/tree.py)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
WALLET = "11111111111111111111111111111111"
CATEGORIES = ("ffmpeg", "xvfb", "renderer", "python", "other")
HOLD_SPEED = 0.99
FPS = float(StreamConfig().framerate)  # the trees' (the default)


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} density: {line}", file=sys.stderr, flush=True)


# -- /proc --------------------------------------------------------------------------------------

def category(pid: int) -> str:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if comm == "ffmpeg":
        return "ffmpeg"
    if comm == "Xvfb":
        return "xvfb"
    if comm in ("xterm", "tail") or "scene" in cmdline:
        return "renderer"
    if comm.startswith("python") or comm in ("appliance", "supervisord"):
        return "python"
    return "other"


def proc_stat(pid: int) -> tuple[float, float, int] | None:
    """(CPU seconds, start time in seconds since boot, RSS kB) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[19]) / CLK_TCK, int(fields[21]) * PAGE_KB


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


@dataclass
class Snapshot:
    wall: float
    cpu: dict[tuple[int, str], float] = field(default_factory=dict)   # (pid, category) -> CPU s
    rss_kb: int = 0
    ffmpeg_start: float | None = None     # seconds since boot
    speed: float | None = None            # FFmpeg's average since its start
    dropped: int | None = None


def snapshot(tree: Tree) -> Snapshot:
    snap = Snapshot(wall=uptime())
    for pid in {tree.up.pid, *descendants(tree.up.pid)}:
        stat = proc_stat(pid)
        if stat is None:
            continue
        kind = category(pid)
        snap.cpu[(pid, kind)] = stat[0]
        snap.rss_kb += stat[2]
        if kind == "ffmpeg":
            snap.ffmpeg_start = stat[1]
    try:
        metrics = ControlClient.from_state(tree.state).call("GET", "/metrics")
        snap.speed = _metric(metrics, "encoder_speed")
        dropped = _metric(metrics, "encoder_dropped_frames_total")
        snap.dropped = int(dropped) if dropped is not None else None
    except ApplianceError:
        pass
    return snap


def _metric(text: str, name: str) -> float | None:
    match = re.search(rf"^retake_appliance_{name}(?:{{[^}}]*}})? ([0-9.eE+-]+)$", text, re.M)
    return float(match.group(1)) if match else None


# -- the trees ---------------------------------------------------------------------------------

@dataclass
class Tree:
    name: str
    state: Path
    up: subprocess.Popen[bytes]
    log: Path
    runtime: RuntimeLayout  # the tree's private runtime folder (its X cookie is there)


_SERIAL = itertools.count()


def start_tree(sb: Sandbox, work: Path, stream: dict[str, object]) -> Tree:
    """Register and verify an agent in the sandbox (as `appliance rehearse` does), then start
    its whole tree with `appliance up` (display and control port chosen free)."""
    name = f"Density{next(_SERIAL)}x{os.getpid() % 1000}"  # a new agent for every tree of every level
    folder = work / name
    folder.mkdir(parents=True)
    config = folder / "appliance.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"name": name, "description": "density bench", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "DENS"},
        "retake": {"base_url": sb.base_url, "sandbox": True},
        "paths": {"credentials": str(folder / "credentials.json"), "state_dir": str(folder / "state")},
        # a low min_speed: the bench measures speed; the controller must not restart FFmpeg over it
        "stream": {"min_speed": 0.05, "stall_after_s": 30, **stream},
    }))
    settings = load_config(config)
    creds, _ = register_agent(settings, RetakeClient(settings.retake))
    client = RetakeClient(settings.retake, creds.access_token)
    client.prepare_verify()
    client.verify(SIMULATED_TWEET)
    log = folder / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAKE_")}
    env["APPLIANCE_HOLD_ON_ERROR"] = "0"
    runtime = RuntimeLayout(folder / "run")
    env["APPLIANCE_RUNTIME_DIR"] = str(runtime.root)
    with open(log, "wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "appliance", "up", "--config", str(config)], cwd=REPO,
                              env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Tree(name, settings.state_dir, up, log, runtime)


def stop_trees(trees: list[Tree]) -> None:
    for tree in trees:
        if tree.up.poll() is None:
            tree.up.send_signal(signal.SIGTERM)
    for tree in trees:
        try:
            tree.up.wait(60)
        except subprocess.TimeoutExpired:
            tree.up.kill()


def wait_live(trees: list[Tree], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(trees)
    while pending:
        for tree in list(pending):
            if tree.up.poll() is not None:
                raise SystemExit(f"{tree.name}'s tree ended ({tree.up.returncode}):\n{tree.log.read_text()[-3000:]}")
            try:
                if ControlClient.from_state(tree.state).call("GET", "/status").get("state") == "live":
                    pending.remove(tree)
            except ApplianceError:
                pass
        if time.monotonic() > deadline:
            raise SystemExit(f"not live after {timeout:.0f} s: {[t.name for t in pending]}")
        time.sleep(1)


@dataclass
class Level:
    n: int
    speeds: list[float]
    drops: list[int]
    cores: dict[str, float]
    rss_mb: list[float]
    gaps: list[tuple[int, float]] = field(default_factory=list)  # per recording: (gaps > 1.5 frames, longest s)

    @property
    def longest_gap(self) -> float:
        return max((g[1] for g in self.gaps), default=float("inf"))

    @property
    def holds(self) -> bool:
        return (bool(self.speeds) and min(self.speeds) >= HOLD_SPEED and max(self.drops) == 0
                and self.longest_gap < 2 / FPS)


def frame_gaps(recording: Path, start: float, end: float) -> tuple[int, float]:
    """(gaps longer than 1.5 frames, the longest gap in seconds) between the video frames of a
    recording whose timestamps fall in [start, end] (seconds of the stream)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                          "-of", "csv=p=0", str(recording)], capture_output=True, text=True, timeout=300).stdout
    times = sorted(t for t in map(float, re.findall(r"^(-?[0-9.]+)", out, re.M)) if start <= t <= end)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return sum(g > 1.5 / FPS for g in gaps), max(gaps, default=float("inf"))


def media_time(snap: Snapshot) -> float | None:
    """Seconds of stream FFmpeg had produced at ``snap`` (its timestamps start at 0)."""
    if snap.speed is None or snap.ffmpeg_start is None:
        return None
    return snap.speed * (snap.wall - snap.ffmpeg_start)


def window_speed(before: Snapshot, after: Snapshot) -> float:
    media0, media1 = media_time(before), media_time(after)
    if media0 is None or media1 is None or before.ffmpeg_start != after.ffmpeg_start:
        return 0.0  # FFmpeg restarted in the window (a stall): that is not holding speed
    return (media1 - media0) / (after.wall - before.wall)


def window_gaps(sb: Sandbox, tree: Tree, before: Snapshot, after: Snapshot) -> tuple[int, float]:
    """Frame gaps in the tree's recording over the measured window (inf: no recording of it)."""
    media0, media1 = media_time(before), media_time(after)
    deadline = time.monotonic() + 20  # nginx closes a recording once its publisher is gone
    while time.monotonic() < deadline:
        done = [Path(r["path"]) for r in sb.recordings() if r.get("complete") and r.get("agent") == tree.name]
        if done and media0 is not None and media1 is not None:
            return frame_gaps(max(done, key=lambda p: p.stat().st_size), media0, media1)
        time.sleep(0.5)
    return 0, float("inf")


def measure_level(sb: Sandbox, work: Path, n: int, stream: dict[str, object], *, seconds: float,
                  settle: float) -> Level:
    trees: list[Tree] = []
    try:
        for _ in range(n):
            trees.append(start_tree(sb, work, stream))
        wait_live(trees, 60 + 30 * n)
        say(f"N={n}: all live; settling {settle:.0f} s, then measuring {seconds:.0f} s")
        time.sleep(settle)
        before = [snapshot(t) for t in trees]
        time.sleep(seconds)
        after = [snapshot(t) for t in trees]
    finally:
        stop_trees(trees)
    cores = dict.fromkeys(CATEGORIES, 0.0)
    for b, a in zip(before, after, strict=False):
        span = a.wall - b.wall
        for (pid, kind), cpu in a.cpu.items():
            cores[kind] += (cpu - b.cpu.get((pid, kind), 0.0)) / span
    return Level(n=n, speeds=[window_speed(b, a) for b, a in zip(before, after, strict=False)],
                 drops=[(a.dropped or 0) - (b.dropped or 0) if a.dropped is not None else 10**6
                        for b, a in zip(before, after, strict=False)],
                 cores=cores, rss_mb=[a.rss_kb / 1024 for a in after],
                 gaps=[window_gaps(sb, t, b, a) for t, b, a in zip(trees, before, after, strict=False)])


def print_levels(levels: list[Level]) -> None:
    print("\n| N | speed min / median | dropped (max) | frame gaps > 50 ms (all streams) / longest, ms | "
          "CPU cores total (per appliance) | FFmpeg / Xvfb / renderer / Python / other | RSS per appliance, MB "
          "| holds |")
    print("|---|---|---|---|---|---|---|---|")
    for lv in levels:
        total = sum(lv.cores.values())
        split = " / ".join(f"{100 * lv.cores[k] / total:.0f}%" if total else "-" for k in CATEGORIES)
        print(f"| {lv.n} | {min(lv.speeds):.3f} / {statistics.median(lv.speeds):.3f} | {max(lv.drops)} | "
              f"{sum(g[0] for g in lv.gaps)} / {1000 * lv.longest_gap:.0f} | {total:.2f} ({total / lv.n:.2f}) | "
              f"{split} | {statistics.median(lv.rss_mb):.0f} | "
              f"{'yes' if lv.holds else 'no'} |")
    held = [lv.n for lv in levels if lv.holds]
    print(f"\ndensity: {max(held) if held else 0} appliance(s) on {os.cpu_count()} cores "
          f"(speed >= {HOLD_SPEED}, 0 dropped frames and no frame gap of 2 frames after start-up)")


# -- cheap encoder wins at equal quality -------------------------------------------------------

VARIANTS = {
    "reference": [],
    "threads 1": ["-threads", "1"],
    "threads 2": ["-threads", "2"],
    "scaler fast_bilinear": ["-sws_flags", "fast_bilinear"],
    "threads 1 + fast_bilinear": ["-threads", "1", "-sws_flags", "fast_bilinear"],
}


SOURCE_S = 10.0


def capture_source(display: str, out: Path, xauthority: Path, seconds: float = SOURCE_S) -> None:
    """``seconds`` of a live screen, lossless and in x11grab's own pixel format (bgr0); the
    display admits only holders of the tree's cookie."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "x11grab", "-draw_mouse", "0",
                    "-framerate", "30", "-video_size", "1280x720", "-i", display, "-t", f"{seconds}",
                    "-c:v", "libx264rgb", "-qp", "0", "-preset", "ultrafast", "-y", str(out)], check=True, timeout=120,
                   env=dict(os.environ, XAUTHORITY=str(xauthority)))


def variant_command(source: Path, out: Path, extra: list[str]) -> list[str]:
    """The appliance's own FFmpeg command (media/encoder.build_command) with x264's threads left
    to FFmpeg as in the skill's reference command, its screen input swapped for ``source`` and
    ``extra`` options added before the output."""
    from appliance.media.encoder import build_command, video_input
    from appliance.media.settings import StreamConfig
    stream = StreamConfig(display=":0", encoder_threads=0)
    cmd = build_command(stream, str(out), audio="silent", progress="")
    grab = video_input(stream)
    at = next(i for i in range(len(cmd)) if cmd[i:i + len(grab)] == grab)
    cmd[at:at + len(grab)] = ["-i", str(source)]
    if "-sws_flags" in extra and "-sws_flags" in cmd:
        i = cmd.index("-sws_flags")
        del cmd[i:i + 2]
    cmd[-3:-3] = [*extra, "-t", f"{SOURCE_S:g}", "-y"]  # before "-f flv target"; the silent audio never ends
    return cmd


def ssim(encoded: Path, source: Path) -> float:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", str(encoded), "-i", str(source),
                          "-lavfi", "[0:v][1:v]ssim", "-f", "null", "-"], capture_output=True, text=True, timeout=300)
    match = re.search(r"All:([0-9.]+)", out.stderr)
    return float(match.group(1)) if match else 0.0


def cpu_of(cmd: list[str]) -> float:
    before = os.times()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"encode failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def encoder_options(display: str, xauthority: Path, work: Path, rounds: int = 3) -> None:
    source = work / "source.mkv"
    capture_source(display, source, xauthority)
    media_s = SOURCE_S
    rows = []
    for name, extra in VARIANTS.items():
        cpus, quality = [], 0.0
        for r in range(rounds):
            out = work / f"variant-{r}.flv"
            cpus.append(cpu_of(variant_command(source, out, extra)) / media_s)
            quality = ssim(out, source)
        rows.append((name, statistics.median(cpus), quality))
    base_cpu, base_ssim = rows[0][1], rows[0][2]
    print("\n| encoder variant | CPU-s per stream-s (median) | vs reference | SSIM vs source | equal quality |")
    print("|---|---|---|---|---|")
    for name, cpu, quality in rows:
        print(f"| {name} | {cpu:.3f} | {cpu / base_cpu:.2f} | {quality:.4f} | "
              f"{'yes' if quality >= base_ssim - 0.002 else 'no'} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-n", type=int, default=6, help="0: only --options")
    parser.add_argument("--start-n", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per level")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after all are live before measuring")
    parser.add_argument("--comment-every", type=float, default=2.0, help="simulated viewer comment interval")
    parser.add_argument("--options", action="store_true", help="also compare encoder options at equal quality (SSIM)")
    parser.add_argument("--threads", type=int, default=None,
                        help="stream.encoder_threads of every tree (default: the config's default; 0: FFmpeg's choice)")
    parser.add_argument("--keep-going", action="store_true", help="measure every N up to --max-n even after a failure")
    args = parser.parse_args(argv)
    stream = {} if args.threads is None else {"encoder_threads": args.threads}  # settings of every tree
    work = Path(tempfile.mkdtemp(prefix="density-", dir="/tmp"))
    levels: list[Level] = []
    try:
        with Sandbox(port=0, rtmp=True, viewer_interval=args.comment_every, record_dir=work / "recordings") as sb:
            say(f"sandbox {sb.base_url}; {os.cpu_count()} cores; work in {work}")
            for n in range(args.start_n, args.max_n + 1):
                level = measure_level(sb, work, n, stream, seconds=args.seconds, settle=args.settle)
                levels.append(level)
                say(f"N={n}: speeds {[round(s, 3) for s in level.speeds]}, dropped {level.drops}, "
                    f"longest frame gaps (ms) {[round(1000 * g[1]) for g in level.gaps]}, "
                    f"cores {sum(level.cores.values()):.2f}, {'holds' if level.holds else 'does not hold'}")
                for recording in (work / "recordings").glob("*.flv"):  # the folder stays nginx's
                    recording.unlink()
                if not level.holds and not args.keep_going:
                    break
            if levels:
                print_levels(levels)
            if args.options:
                trees = [start_tree(sb, work, stream)]
                try:
                    wait_live(trees, 90)
                    info = json.loads(StateLayout(trees[0].state).control_json.read_text())
                    encoder_options(info["display"], trees[0].runtime.xauthority, work)
                finally:
                    stop_trees(trees)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
