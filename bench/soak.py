#!/usr/bin/env python3
"""Soak: the image, as compose's sandbox profile runs it (`appliance rehearse` in the container:
the sandbox with simulated viewers chatting, the whole tree live against it), for a set time,
with the load of a real show, then what hours did to it.

During the run (every period configurable):
  speech       `appliance say` every minute (inside the container, as an operator would)
  scenes       `appliance scene brb`, then back to `live` 20 s later, every 5 minutes
  chat         the sandbox's simulated viewers (one every ~6 s), plus one named viewer of ours
               every 20 s whose answer is looked for in the agent's messages (host brain: it names
               whom it answers)
  sync         a white square in the bottom-right corner and a 3 kHz beep into the sink at the
               same moment every 10 s (bench/soak_sync.py, run inside the container)
  kill         SIGKILL of the encoder (FFmpeg) once every 30 minutes: the lifecycle recovers
  samples      every 30 s, each process of the container's tree: its memory (PSS) and pid

Reports (printed as tables, and with --json as one object):
  rss          per process (summed by role), MB at the end and growth in MB/h after warm-up (least
               squares over the samples), and for the tree as a whole (goal < 5 MB/h). Measured as
               PSS, which splits shared pages among the processes that map them (RSS would count
               X's shared-memory frames twice, in Xvfb and in x11grab)
  av_sync      per recording (each recovery starts a new one): the audio-minus-video offset of
               each flash/beep pair, its median, and the drift (median of the last 5 minutes minus
               the first 5 after warm-up; goal |drift| < 40 ms over 2 hours)
  frames       frame gaps in the recordings: frames dropped (missing 30 fps slots) and the largest gap
  chat         our viewer's comments posted, answered once, answered twice, never answered
  thumbnails   uploads, the least expected (one per (re)start + one per interval of each stream),
               the largest gap, gaps longer than the interval (+10 %, +10 s)
  restarts     stream/start calls (1 + one per kill expected), why the controller recovered
               (its log lines), helpers whose pid changed (a process supervisord restarted that
               we did not kill)

    .venv/bin/python bench/soak.py --minutes 120 --json soak.json     # the figure (about 2 h 15 min)
    .venv/bin/python bench/soak.py --minutes 4 --kill-every-minutes 2  # a short look
Needs podman + podman-compose (scripts/setup.sh --test, shared/tools/container-engine.sh) and
builds the image (tag retake-appliance:test-<checkout>) unless --image names one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.core.sanitize import clean_text  # noqa: E402
from tests.support.compose import (  # noqa: E402
    REHEARSAL_CONFIG,
    REHEARSAL_RECORDINGS,
    ComposeProject,
    RemoteSandbox,
    compose_available,
    sandbox_origin,
)
from tests.support.sandbox import entry_name, entry_time  # noqa: E402
from tests.support.tree import IMAGE_TAG, descendants  # noqa: E402

SYNC_IN_CONTAINER = "/tmp/soak_sync.py"
FPS = 30
FLASH_RECT = (1280 - 96, 720 - 96, 96, 96)   # bottom-right, where bench/soak_sync.py flashes
BEEP_BAND = "bandpass=f=3000:width_type=h:width=400"
PAIR_WINDOW_S = 0.5                          # a beep belongs to the flash at most this far from it
DRIFT_WINDOW_S = 300                         # the first and last 5 minutes of a recording
SPEECH = ["The soak goes on, hour after hour.", "Still here, still live, still talking.",
          "Another minute on air, and all is well.", "Chat, tell me what to build next."]


# --- the container's processes -----------------------------------------------------------------

def role(pid: int) -> str:
    """What a process of the container is, from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "(gone)"
    line = " ".join(a.decode(errors="replace") for a in argv if a)
    if comm == "ffmpeg":  # the encoder writes FLV; a thumbnail grab writes one PNG
        return "ffmpeg (encoder)" if "flv" in line else "ffmpeg (other)"
    if "supervisord" in line:
        return "supervisord"
    if "appliance.scene.renderer" in line:
        return "scene renderer"
    if " live " in f" {line} " and "appliance" in line:
        return "controller (appliance live)"
    if "rehearse" in line:
        return "rehearse + sandbox (not the tree)"
    if comm.startswith("nginx"):
        return "nginx (sandbox ingest, not the tree)"
    if "on-controller-exit" in line:
        return "on-controller-exit"
    if comm in ("bash", "sh") and ".sh" in line:
        return f"script {Path(line.split('.sh')[0]).name}.sh"
    return comm


HELPERS = ("Xvfb", "openbox", "pulseaudio", "scene renderer", "tmux: server", "xterm", "supervisord",
           "controller (appliance live)", "bash", "nologin")  # bash/nologin: the terminal's shell pane
NOT_THE_TREE = ("rehearse + sandbox (not the tree)", "nginx (sandbox ingest, not the tree)", "tini")


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages divided among their users, so a sum over processes
    counts X's shared-memory frames (Xvfb and x11grab both map them) once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def between_cuts(points: list[tuple[float, float]], cuts: list[float], min_s: float) -> list[float]:
    """The growth (per hour) of each stretch of ``points`` between two ``cuts`` (the encoder
    kills, which reset its memory) that lasts at least ``min_s``."""
    edges = [-math.inf, *sorted(cuts), math.inf]
    slopes = []
    for a, b in itertools.pairwise(edges):
        stretch = [p for p in points if a < p[0] < b]
        if len(stretch) >= 3 and stretch[-1][0] - stretch[0][0] >= min_s:
            value = slope_per_hour(stretch)
            if value is not None:
                slopes.append(value)
    return slopes


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 3:
        return None
    mt = statistics.fmean(t for t, _ in points)
    mv = statistics.fmean(v for _, v in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return None if den == 0 else sum((t - mt) * (v - mv) for t, v in points) / den * 3600


# --- decoding the recordings ---------------------------------------------------------------------

def _ffmpeg(args: list[str], timeout: float) -> str:
    done = subprocess.run(["ffmpeg", "-v", "info", "-nostdin", *args, "-f", "null", "-"], capture_output=True,
                          text=True, timeout=timeout)
    return done.stderr + done.stdout


def onsets(track: list[tuple[float, float]], above: float, *, quiet_s: float) -> list[float]:
    """Times where the value rises above ``above`` after at least ``quiet_s`` below it."""
    found, last_above = [], -math.inf
    for t, value in track:
        if value > above:
            if t - last_above > quiet_s:
                found.append(t)
            last_above = t
    return found


def flash_onsets(path: Path, timeout: float) -> list[float]:
    x, y, w, h = FLASH_RECT
    err = _ffmpeg(["-i", str(path), "-an", "-fps_mode", "passthrough",
                   "-vf", f"crop={w}:{h}:{x}:{y},format=gray,showinfo"], timeout)
    track = [(float(m[1]), float(m[2])) for m in re.finditer(r"pts_time:\s*([0-9.]+).*?mean:\[([0-9.]+)", err)]
    return onsets(track, 200.0, quiet_s=2.0)


def beep_onsets(path: Path, timeout: float) -> list[float]:
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vn", "-af",
                          f"aresample=44100,{BEEP_BAND},asetnsamples=n=110,astats=metadata=1:reset=1,"
                          "ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file=-", "-f", "null", "-"],
                         capture_output=True, text=True, timeout=timeout).stdout
    track, t = [], None
    for line in out.splitlines():
        if "pts_time:" in line:
            t = float(line.rsplit("pts_time:", 1)[1])
        elif "RMS_level=" in line and t is not None:
            value = line.split("=", 1)[1]
            track.append((t, -200.0 if value in ("-inf", "inf", "nan") else float(value)))
    return onsets(track, -35.0, quiet_s=2.0)


def pair_offsets(flashes: list[float], beeps: list[float]) -> list[tuple[float, float]]:
    """(flash time, beep - flash) for each flash with a beep within PAIR_WINDOW_S."""
    pairs = []
    for f in flashes:
        near = [b for b in beeps if abs(b - f) <= PAIR_WINDOW_S]
        if near:
            b = min(near, key=lambda b: abs(b - f))
            pairs.append((f, b - f))
    return pairs


def packet_times(path: Path, timeout: float) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, timeout=timeout).stdout
    return sorted(float(v) for v in out.split() if v not in ("", "N/A"))


def analyse_recording(path: Path, warmup_s: float) -> dict[str, Any]:
    size = path.stat().st_size
    timeout = 600 + size / 1e6 * 2  # about 2 s of decoding per MB on a busy core, generously
    times = packet_times(path, timeout)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    dropped = sum(max(0, round(g * FPS) - 1) for g in gaps)
    pairs = pair_offsets(flash_onsets(path, timeout), beep_onsets(path, timeout))
    offsets_ms = [o * 1000 for _, o in pairs]
    duration = times[-1] - times[0] if len(times) > 1 else 0.0
    result: dict[str, Any] = {"file": path.name, "seconds": round(duration, 1), "frames": len(times),
                              "frames_dropped": dropped, "largest_gap_s": round(max(gaps, default=0.0), 3),
                              "sync_pairs": len(pairs)}
    if pairs:
        result["offset_ms_median"] = round(statistics.median(offsets_ms), 1)
        result["offset_ms_spread"] = round(max(offsets_ms) - min(offsets_ms), 1)
        # drift: the offset's least-squares trend over the recording (after warm-up when it is
        # long enough), as the change from its first to its last pair; for a long recording also
        # the median of its last 5 minutes minus that of its first 5
        after = [(t, o * 1000) for t, o in pairs if t >= pairs[0][0] + warmup_s] \
            if pairs[-1][0] - pairs[0][0] > warmup_s + 2 * DRIFT_WINDOW_S else [(t, o * 1000) for t, o in pairs]
        trend = slope_per_hour(after) if len(after) >= 6 else None  # fewer pairs: frame quantisation dominates
        if trend is not None:
            span = after[-1][0] - after[0][0]
            result["drift_ms"] = round(trend * span / 3600, 1)
            result["drift_over_s"] = round(span, 1)
        if len(after) > 1 and after[-1][0] - after[0][0] >= 2 * DRIFT_WINDOW_S:
            early = [o for t, o in after if t < after[0][0] + DRIFT_WINDOW_S]
            late = [o for t, o in after if t >= after[-1][0] - DRIFT_WINDOW_S]
            result["drift_ms_5min_medians"] = round(statistics.median(late) - statistics.median(early), 1)
    return result


# --- the run -----------------------------------------------------------------------------------

@dataclass
class Run:
    args: argparse.Namespace
    project: ComposeProject
    sb: RemoteSandbox | None = None
    started: float = 0.0
    ended: float = 0.0
    samples: list[tuple[float, dict[int, tuple[str, int]]]] = field(default_factory=list)
    ours: dict[str, float] = field(default_factory=dict)   # our viewer's name -> when posted
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    kills: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def log(self, text: str) -> None:
        print(f"soak {time.time() - self.started:7.1f}s  {text}", flush=True)

    def container_pid(self) -> int:
        out = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", self.project.rehearsal],
                             capture_output=True, text=True, env=self.project.env, timeout=30).stdout.strip()
        return int(out or 0)

    def tree(self) -> dict[int, tuple[str, int]]:
        root = self.container_pid()
        if not root:
            return {}
        return {pid: (role(pid), pss_kb(pid)) for pid in descendants(root) | {root}}

    def appliance(self, *args: str) -> bool:
        try:
            self.project.appliance(self.project.rehearsal, *args, timeout=90)
            return True
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            self.errors.append(f"appliance {args[0]}: {str(exc)[:200]}")
            return False

    def kill_encoder(self) -> None:
        encoders = [pid for pid, (name, _) in self.tree().items() if name == "ffmpeg (encoder)"]
        for pid in encoders:
            os.kill(pid, signal.SIGKILL)
        self.kills.append(time.time())
        self.log(f"killed the encoder (pid {encoders})")

    def schedule(self) -> list[tuple[float, str]]:
        a, end = self.args, self.args.minutes * 60
        plan: list[tuple[float, str]] = []
        plan += [(t + 5.0, "say") for t in _every(a.say_every_s, end)]  # 5 s after a sync slot
        plan += [(t + 2.0, "brb") for t in _every(a.scene_every_s, end)]
        plan += [(t + 22.0, "live") for t in _every(a.scene_every_s, end)]
        plan += [(t, "comment") for t in _every(a.comment_every_s, end - 20)]  # each with time to be answered
        plan += [(t, "sample") for t in [1.0, *_every(a.sample_every_s, end)]]
        plan += [(t + 3.0, "kill") for t in _every(a.kill_every_minutes * 60, end)]
        return sorted(p for p in plan if p[0] < end)

    def act(self, what: str, n: int) -> None:
        if what == "say":
            self.events["say"] += self.appliance("say", SPEECH[n % len(SPEECH)])
        elif what in ("brb", "live"):
            self.events[f"scene {what}"] += self.appliance("scene", what)
        elif what == "comment" and self.sb is not None:
            name = f"soak{len(self.ours):04d}"
            try:
                self.sb.post_comment(f"hello from {name}, how is the stream going?", name)
                self.ours[name] = time.time()
            except Exception as exc:
                self.errors.append(f"comment: {exc}")
        elif what == "sample":
            self.samples.append((time.time(), self.tree()))
        elif what == "kill":
            self.kill_encoder()

    def main_loop(self) -> None:
        plan = self.schedule()
        counts: dict[str, int] = defaultdict(int)
        for at, what in plan:
            while not self.stop.is_set() and time.time() - self.started < at:
                self.stop.wait(min(1.0, at - (time.time() - self.started)))
            if self.stop.is_set():
                return
            self.act(what, counts[what])
            counts[what] += 1
            if what == "sample" and counts[what] % 10 == 0:
                total = sum(r for _, (name, r) in self.samples[-1][1].items() if name not in NOT_THE_TREE)
                self.log(f"tree PSS {total / 1024:.0f} MB, {len(self.samples[-1][1])} processes")


def _every(period: float, end: float) -> list[float]:
    return [period * i for i in range(1, int(end / period) + 1)] if period > 0 else []


def start(run: Run) -> None:
    project, args = run.project, run.args
    project.up("sandbox")
    deadline = time.monotonic() + 180
    origin = None
    while origin is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: the rehearsal did not start\n{project.logs(project.rehearsal, tail=60)}")
        time.sleep(1)
        origin = sandbox_origin(project)
    run.sb = RemoteSandbox(origin)
    while not any(entry_name(r) == "agent/stream/chat/send" for r in run.sb.requests()):
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: not live\n{project.logs(project.rehearsal, tail=60)}")
        time.sleep(1)
    subprocess.run(["podman", "cp", str(ROOT / "bench" / "soak_sync.py"), f"{project.rehearsal}:{SYNC_IN_CONTAINER}"],
                   check=True, env=project.env, timeout=60)
    subprocess.run(["podman", "exec", "-d", project.rehearsal, "/opt/venv/bin/python", SYNC_IN_CONTAINER,
                    "--config", REHEARSAL_CONFIG, "--period", str(args.sync_every_s),
                    "--seconds", str(args.minutes * 60 + 5)], check=True, env=project.env, timeout=60,
                   stdout=subprocess.DEVNULL)
    # the schedule starts on a sync slot, so speech (+5 s) and scene switches (+2 s) never meet a flash
    slot = math.ceil(time.time() / args.sync_every_s) * args.sync_every_s
    time.sleep(max(0.0, slot - time.time()))
    run.started = slot
    run.log(f"live; sandbox at {origin}; running for {args.minutes:g} min")


def finish(run: Run, work: Path) -> dict[str, Any]:
    project, args = run.project, run.args
    assert run.sb is not None
    agents = run.sb.state()["agents"]
    user_id = agents[0]["userDbId"] if agents else ""
    deadline = time.monotonic() + 30  # the last comments' answers may still be on their way
    while True:
        messages = run.sb.agent_messages(user_id) if user_id else []
        if time.monotonic() > deadline or all(any(re.search(rf"\b{n}\b", m) for m in messages) for n in run.ours):
            break
        time.sleep(2)
    requests_log = run.sb.requests()
    run.ended = time.time()
    # why the controller recovered, from its own log lines ("state live -> recovering (why)")
    recoveries = re.findall(r"INFO state \w+ -> recovering \((.{0,120})", project.logs(project.rehearsal))
    stopped = project.compose("stop", "-t", "40", "sandbox", timeout=180)
    if stopped.returncode != 0:
        run.errors.append(f"compose stop: {stopped.stderr[-300:]}")
    recordings_dir = project.copy_out(project.rehearsal, REHEARSAL_RECORDINGS, work / "recordings")
    recordings = sorted(recordings_dir.glob("*.flv"), key=lambda p: p.name.rsplit("-", 1)[-1])
    warmup = args.warmup_minutes * 60

    # rss: per role, summed over its processes, per sample; growth after warm-up
    per_role: dict[str, list[tuple[float, float]]] = defaultdict(list)
    tree_total: list[tuple[float, float]] = []
    pids: dict[str, set[int]] = defaultdict(set)
    for at, tree in run.samples:
        t = at - run.started
        sums: dict[str, int] = defaultdict(int)
        for pid, (name, kb) in tree.items():
            sums[name] += kb
            pids[name].add(pid)
        for name, kb in sums.items():
            per_role[name].append((t, kb / 1024))
        tree_total.append((t, sum(kb for name, kb in sums.items() if name not in NOT_THE_TREE) / 1024))
    rss = {name: {"mb_end": round(points[-1][1], 1),
                  "mb_per_hour": _round(slope_per_hour([p for p in points if p[0] >= warmup]))}
           for name, points in sorted(per_role.items())}
    # a helper supervisord restarted: a pid of its role that was not there at the first sample
    # (the encoder is killed on purpose; thumbnails and `podman exec` come and go)
    first = set(run.samples[0][1]) if run.samples else set()
    restarted = {name: len(found - first) for name, found in pids.items()
                 if name in HELPERS and found - first}

    # chat: each of our viewers answered once
    answers = {name: sum(1 for m in messages if re.search(rf"\b{re.escape(name)}\b", m)) for name in run.ours}
    chat = {"posted": len(run.ours), "answered_once": sum(1 for n in answers.values() if n == 1),
            "answered_twice": sorted(k for k, n in answers.items() if n > 1),
            "never_answered": sorted(k for k, n in answers.items() if n == 0)}

    # thumbnails and stream starts from the platform's side
    thumbs = sorted(entry_time(r) for r in requests_log if entry_name(r) == "agent/update-thumbnail"
                    and r.get("status") == 200)
    starts = [entry_time(r) for r in requests_log if entry_name(r) == "agent/stream/start"]
    interval = float((yaml.safe_load((ROOT / "config.example.yaml").read_text()).get("stream") or {})
                     .get("thumbnail_interval_s", 180))
    # one at each (re)start, then one per interval until the next start or the end
    ends = [*starts[1:], run.ended]
    expected = sum(1 + int((end - begin) // interval) for begin, end in zip(starts, ends, strict=True))
    gaps = [b - a for a, b in itertools.pairwise(thumbs)]

    files = [analyse_recording(p, warmup) for p in recordings]
    drifts = [f["drift_ms"] for f in files if "drift_ms" in f]
    result = {
        "minutes": args.minutes, "warmup_minutes": args.warmup_minutes, "image": args.image,
        "rss": rss,
        "tree_rss": {"mb_end": round(tree_total[-1][1], 1) if tree_total else None,
                     "mb_per_hour": _round(slope_per_hour([p for p in tree_total if p[0] >= warmup])),
                     # each stretch between two kills (>= 5 min), after warm-up: the kills reset
                     # the encoder's memory, which a single slope over the run would read as shrinking
                     "mb_per_hour_between_kills": [round(v, 2) for v in between_cuts(
                         [p for p in tree_total if p[0] >= warmup], [k - run.started for k in run.kills], 300)],
                     "samples": len(tree_total)},
        "av_sync": {"recordings": files,
                    "worst_drift_ms": max(drifts, key=abs) if drifts else None,
                    "offset_ms_median": _round(statistics.median([f["offset_ms_median"] for f in files
                                                                  if "offset_ms_median" in f]))
                    if any("offset_ms_median" in f for f in files) else None},
        "frames": {"dropped": sum(f["frames_dropped"] for f in files),
                   "largest_gap_s": max((f["largest_gap_s"] for f in files), default=None),
                   "frames": sum(f["frames"] for f in files)},
        "chat": chat,
        "thumbnails": {"uploaded": len(thumbs), "expected_at_least": expected, "interval_s": interval,
                       "largest_gap_s": round(max(gaps), 1) if gaps else None,
                       "late": sum(1 for g in gaps if g > interval * 1.1 + 10)},
        "restarts": {"stream_starts": len(starts), "encoder_kills": len(run.kills),
                     "recoveries": [clean_text(r, 120) for r in recoveries][:50],
                     "helpers_restarted_unasked": restarted},
        "actions": dict(run.events), "errors": run.errors[:50],
    }
    return result


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def print_report(r: dict[str, Any]) -> None:
    print(f"\n## Soak: {r['minutes']:g} minutes (warm-up {r['warmup_minutes']:g}), image {r['image']}\n")
    print("| process | PSS at the end (MB) | growth after warm-up (MB/h) |\n|---|---:|---:|")
    for name, row in r["rss"].items():
        print(f"| {name} | {row['mb_end']} | {row['mb_per_hour']} |")
    t = r["tree_rss"]
    print(f"| **the tree** (not the sandbox) | **{t['mb_end']}** | **{t['mb_per_hour']}** (goal < 5); "
          f"between kills: {t['mb_per_hour_between_kills'] or '-'} |")
    print("\n| recording | seconds | frames dropped | largest gap (s) | sync pairs | A-V offset median (ms) |"
          " spread (ms) | drift (ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for f in r["av_sync"]["recordings"]:
        print(f"| {f['file'][-24:]} | {f['seconds']} | {f['frames_dropped']} | {f['largest_gap_s']} | "
              f"{f['sync_pairs']} | {f.get('offset_ms_median', '-')} | {f.get('offset_ms_spread', '-')} | "
              f"{f.get('drift_ms', '-')} |")
    c, th, rs = r["chat"], r["thumbnails"], r["restarts"]
    print(f"\nworst A/V drift {r['av_sync']['worst_drift_ms']} ms (goal |drift| < 40); frames dropped "
          f"{r['frames']['dropped']} of {r['frames']['frames']}")
    print(f"chat: {c['posted']} comments of ours, answered once {c['answered_once']}, twice "
          f"{len(c['answered_twice'])}, never {len(c['never_answered'])}")
    print(f"thumbnails: {th['uploaded']} uploaded, at least {th['expected_at_least']} expected, largest gap "
          f"{th['largest_gap_s']} s, {th['late']} later than the interval allows")
    print(f"restarts: {rs['stream_starts']} stream/start ({rs['encoder_kills']} encoder kills), "
          f"helpers restarted unasked {rs['helpers_restarted_unasked'] or 'none'}")
    for why in rs["recoveries"][:10]:
        print(f"  recovery: {why}")
    print(f"actions: {r['actions']}" + (f"; errors: {r['errors'][:5]}" if r["errors"] else ""))


def build_image(tag: str) -> None:
    from appliance.fleet.cli import docker_client
    client = docker_client(timeout=1800)
    print(f"soak: building {tag}", flush=True)
    client.images.build(path=str(ROOT), tag=tag, rm=True, forcerm=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=120)
    parser.add_argument("--warmup-minutes", type=float, default=None, help="default: 10, or a quarter of a short run")
    parser.add_argument("--say-every-s", type=float, default=60)
    parser.add_argument("--scene-every-s", type=float, default=300)
    parser.add_argument("--comment-every-s", type=float, default=20)
    parser.add_argument("--sync-every-s", type=float, default=10)
    parser.add_argument("--sample-every-s", type=float, default=30)
    parser.add_argument("--kill-every-minutes", type=float, default=30)
    parser.add_argument("--min-speed", type=float, default=None,
                        help="stream.min_speed (default: the example config's; CI's busy machine uses 0.5)")
    parser.add_argument("--image", default=None, help=f"an image to run (default: build {IMAGE_TAG})")
    parser.add_argument("--keep", type=Path, default=None, help="copy the recordings here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.warmup_minutes is None:
        args.warmup_minutes = min(10.0, args.minutes / 4)
    if why := compose_available():
        raise SystemExit(f"soak: {why}")
    if args.image is None:
        args.image = IMAGE_TAG
        build_image(IMAGE_TAG)
    config = yaml.safe_load((ROOT / "config.example.yaml").read_text())  # what users run
    if args.min_speed is not None:
        config["stream"]["min_speed"] = args.min_speed
    work = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    run = Run(args, ComposeProject(args.image, prefix="soak", network_mode="host", config=config))
    previous = signal.signal(signal.SIGTERM, lambda *_: run.stop.set())
    try:
        start(run)
        try:
            run.main_loop()
        except KeyboardInterrupt:
            run.log("interrupted: reporting what was measured")
        result = finish(run, work)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for flv in (work / "recordings").glob("*.flv"):
                flv.replace(args.keep / flv.name)
    finally:
        signal.signal(signal.SIGTERM, previous)
        run.project.down()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
