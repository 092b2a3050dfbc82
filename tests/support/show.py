"""The show as viewers get it: `appliance up` (the real tree and controller) live on a sandbox
agent, and what its recording holds, decoded. Shared by tests/e2e/test_show_live.py and
bench/voice.py.

  * :class:`LiveAppliance` — starts `appliance up` against a sandbox with an RTMP ingest, waits
    until the agent is live, and gives the control API, the display, the encoder's pid and the
    recording nginx made of the stream.
  * Decoding: :func:`audio_levels` (windowed RMS), :func:`sound_segments` (where the audio is
    above a level), :func:`region_track` (per video frame: how much a screen region's pixels
    vary, i.e. whether text is drawn there), :func:`shown_segments`, :func:`frame_times`,
    :func:`ocr` (tesseract on one region of one decoded frame).
  * The avatar: :func:`mouth_rect` (where the default character's mouth is in a scene),
    :func:`dark_track` (per frame: the share of dark pixels in a rectangle, i.e. how open the
    mouth is), :func:`lip_sync` (mouth onsets against audio onsets, and open mouths in pauses).
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.control.client import ControlClient
from appliance.core.errors import ApplianceError
from appliance.scene.draw import box_rect
from appliance.scene.template import load_scene

REPO = Path(__file__).resolve().parents[2]
WALLET = "11111111111111111111111111111111"
Rect = tuple[int, int, int, int]


def scene_rect(region_type: str, scene: str = "live", size: tuple[int, int] = (1280, 720),
               feed: str | None = None) -> Rect:
    """The pixel rectangle of the first region of ``region_type`` (and ``feed``) in a built-in scene."""
    template = load_scene(REPO / "overlays" / f"{scene}.yaml")
    for region in template.regions:
        if region.type == region_type and (feed is None or getattr(region, "feed", None) == feed):
            return box_rect(region.box, *size)
    raise KeyError(f"no {region_type} region in {scene}.yaml")


class _Accept(http.server.BaseHTTPRequestHandler):
    """nginx's on_publish / on_publish_done / on_record_done callbacks: always yes."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class AcceptingCallbacks:
    """An HTTP server that says yes to every nginx-rtmp callback, for a bare
    :class:`appliance.sandbox.rtmp.RtmpIngest` without the sandbox: ``.url``, ``.close()``."""

    def __init__(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the appliance, live ---------------------------------------------------------------------

class LiveAppliance:
    """`appliance up` live on a sandbox agent. Use as a context manager; :meth:`stop` ends it
    (SIGTERM, as supervisord's owner would) and returns the exit code."""

    def __init__(self, sb: Any, base: Path, *, name: str = "ShowAgent", extra: dict | None = None,
                 display: str | None = None) -> None:
        from tests.support.live import make_agent
        self.sb, self.base = sb, base
        agent = make_agent(sb, base, name)  # registered, verified, credentials in base/creds
        self.user, self.token, self.client = agent["user"], agent["token"], agent["client"]
        cred_path = agent["cred_path"]
        self.display = display or "auto"  # `appliance up` reserves a free one (read from control.json at start)
        config = {
            "agent": {"name": name, "description": "show test", "image_url": "https://example.com/a.png",
                      "wallet_address": WALLET, "ticker": "SHOW"},
            "retake": {"base_url": sb.base_url, "sandbox": True, "backoff_s": 0.1, "backoff_max_s": 1},
            "paths": {"credentials": str(cred_path), "state_dir": str(base / "state")},
            "stream": {"display": self.display, "status_poll_s": 1, "min_speed": 0.5},
            "chat": {"poll_s": 1, "quiet_poll_s": 1},
            "control": {"port": 0},
        }
        for section, values in (extra or {}).items():
            config.setdefault(section, {}).update(values)
        self.config = base / "appliance.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.runtime = base / "run"
        self.runtime.mkdir(mode=0o700)
        self.log = base / "up.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.control: ControlClient | None = None
        self.publish_at = 0.0

    def __enter__(self) -> LiveAppliance:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def start(self, timeout: float = 90.0, *, live: bool = True) -> LiveAppliance:
        """`appliance up`; returns once the opening chat message went out (the agent is live), or
        with ``live`` false (``control.autostart: false``) once it stands by."""
        from tests.support.sandbox import entry_name, entry_time
        mark = len(self.sb.requests())
        env = dict(os.environ, APPLIANCE_RUNTIME_DIR=str(self.runtime), APPLIANCE_WAIT_TIMEOUT="20")
        env.pop("RETAKE_ACCESS_TOKEN", None)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "up", "--config", str(self.config)],
                                         env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        if not live:
            return self._standing_by(deadline)
        while not any(entry_name(r) == "agent/stream/chat/send" for r in self.sb.requests()[mark:]):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"not live after {timeout:.0f} s\n--- appliance up ---\n{self.tail()}")
            time.sleep(0.2)
        self.publish_at = next(entry_time(r) for r in self.sb.requests()[mark:] if entry_name(r) == "RTMP publish")
        # a chat poll after the opening message: the first poll (which takes what is already in
        # chat as history, never to be answered) is behind us, so a viewer's comment gets a reply
        sent = next(i for i, r in enumerate(self.sb.requests())
                    if i >= mark and entry_name(r) == "agent/stream/chat/send")
        while not any(entry_name(r) == "agent/stream/comments" for r in self.sb.requests()[sent + 1:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no chat poll after going live\n{self.tail()}")
            time.sleep(0.1)
        self.control = ControlClient.from_state(self.base / "state")
        self.display = json.loads((self.base / "state" / "control.json").read_text())["display"]
        return self

    def _standing_by(self, deadline: float) -> LiveAppliance:
        state = self.base / "state"
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"not standing by\n--- appliance up ---\n{self.tail()}")
            try:
                self.control = ControlClient.from_state(state)
                if (self.control.call("GET", "/status").get("waiting") or {}).get("reason") == "standby":
                    break
            except ApplianceError:
                pass
            time.sleep(0.2)
        self.display = json.loads((state / "control.json").read_text())["display"]
        return self

    @property
    def xauthority(self) -> Path | None:
        """The tree's X cookie when `appliance up` made one (its display then refuses others)."""
        path = self.runtime / "Xauthority"
        return path if path.exists() else None

    def ffmpeg_pid(self) -> int:
        from tests.support.tree import descendants, process_name
        assert self.proc is not None
        found = [pid for pid in descendants(self.proc.pid) if process_name(pid) == "ffmpeg"]
        if len(found) != 1:
            raise AssertionError(f"expected one ffmpeg in the tree, found {found}")
        return found[0]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        assert self.control is not None
        return self.control.call(method, path, body)

    def cli(self, *args: str) -> str:
        """`appliance ARGS` against this appliance (the control API it wrote in the state folder)."""
        result = subprocess.run([sys.executable, "-m", "appliance", args[0], "--config", str(self.config), *args[1:]],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        if result.returncode != 0:
            raise AssertionError(f"appliance {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def stop(self, timeout: float = 60.0) -> int:
        from tests.support.tree import terminate
        assert self.proc is not None
        return terminate(self.proc, timeout)

    def recording(self, timeout: float = 15.0) -> Path:
        """The (first) recording nginx made of the stream, once it is closed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [r for r in self.sb.recordings() if r.get("size", 0) > 0]
            if done:
                return Path(done[0]["path"])
            time.sleep(0.2)
        raise AssertionError("no recording")


# --- decoding the recording ------------------------------------------------------------------

def ffprobe_json(path: Path, *args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out)


def frame_times(path: Path) -> list[float]:
    """Presentation time of every video frame."""
    frames = ffprobe_json(path, "-select_streams", "v", "-show_entries", "frame=pts_time", "-show_frames")["frames"]
    return [float(f["pts_time"]) for f in frames if f.get("pts_time") not in (None, "N/A")]


def audio_levels(path: Path, window_s: float = 0.01, rate: int = 44100) -> list[tuple[float, float]]:
    """(start time, RMS dBFS) of each ``window_s`` window of the decoded audio."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vn", "-af",
           f"aresample={rate},asetnsamples=n={max(1, int(rate * window_s))},astats=metadata=1:reset=1,"
           "ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file=-", "-f", "null", "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=180).stdout
    levels, t = [], None
    for line in out.splitlines():
        if "pts_time:" in line:
            t = float(line.rsplit("pts_time:", 1)[1])
        elif "RMS_level=" in line and t is not None:
            value = line.split("=", 1)[1]
            levels.append((t, -200.0 if value in ("-inf", "inf", "nan") else float(value)))
    return levels


@dataclass(frozen=True)
class Segment:
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def __repr__(self) -> str:
        return f"[{self.start:.3f}-{self.end:.3f}]"


def segments(track: list[tuple[float, float]], above: float, *, bridge_s: float, min_s: float,
             step: float) -> list[Segment]:
    """Runs of samples whose value is above ``above``; gaps shorter than ``bridge_s`` are joined
    (the pauses between words), runs shorter than ``min_s`` dropped. ``step``: a sample's length."""
    runs: list[list[float]] = []
    for t, value in track:
        if value <= above:
            continue
        if runs and t - runs[-1][1] <= bridge_s:
            runs[-1][1] = t + step
        else:
            runs.append([t, t + step])
    return [Segment(a, b) for a, b in runs if b - a >= min_s]


def sound_segments(levels: list[tuple[float, float]], *, above_db: float = -50.0, bridge_s: float = 0.4,
                   min_s: float = 0.3) -> list[Segment]:
    step = levels[1][0] - levels[0][0] if len(levels) > 1 else 0.01
    return segments(levels, above_db, bridge_s=bridge_s, min_s=min_s, step=step)


_SHOWINFO = re.compile(r"pts_time:\s*([0-9.]+).*?stdev:\[([0-9.]+)")


def region_track(path: Path, rect: Rect) -> list[tuple[float, float]]:
    """(time, grey-level standard deviation) of ``rect`` in every decoded video frame: an empty
    bar is one flat colour (about 0), drawn text makes it vary."""
    x, y, w, h = rect
    cmd = ["ffmpeg", "-v", "info", "-nostdin", "-i", str(path), "-an", "-fps_mode", "passthrough",
           "-vf", f"crop={w}:{h}:{x}:{y},format=gray,showinfo", "-f", "null", "-"]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=180).stderr
    return [(float(m[1]), float(m[2])) for m in _SHOWINFO.finditer(err)]


def shown_segments(track: list[tuple[float, float]], *, above: float = 8.0, min_s: float = 0.2) -> list[Segment]:
    step = track[1][0] - track[0][0] if len(track) > 1 else 1 / 30
    return segments(track, above, bridge_s=0.1, min_s=min_s, step=step)


def ocr(path: Path, at: float, rect: Rect, *, negate: bool = True) -> str:
    """tesseract's reading of ``rect`` in the frame at ``at`` seconds (grey, normalised, x2;
    light text on a dark bar is negated first)."""
    x, y, w, h = rect
    with tempfile.TemporaryDirectory(prefix="show-ocr-") as tmp:
        png = Path(tmp) / "f.png"
        filters = f"crop={w}:{h}:{x}:{y},format=gray,scale=iw*2:ih*2:flags=bicubic" + (",negate" if negate else "")
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-ss", f"{at:.3f}", "-i", str(path), "-frames:v", "1",
                        "-vf", filters, "-y", str(png)], check=True, timeout=60)
        out = subprocess.run(["tesseract", str(png), "-", "--psm", "6"], capture_output=True, text=True,
                             timeout=60).stdout
    return " ".join(out.split())


def words_found(text: str, wanted: str) -> list[str]:
    """The words of ``wanted`` (4+ letters) that appear in the OCR'd ``text``."""
    seen = re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()
    return [w for w in re.sub(r"[^a-z0-9 ]", " ", wanted.lower()).split() if len(w) >= 4 and w in seen]


# --- the avatar's mouth in the recording ---------------------------------------------------------

OPEN_SHARE = 0.06   # share of dark pixels in the mouth's rectangle above which the mouth is open
                    # (rendered at 720p: rest 1 %, the open shapes C D E H 11-25 %, puckered F 5 %)


def mouth_rect(scene: str = "live", size: tuple[int, int] = (1280, 720)) -> Rect:
    """Where the default character's mouth is drawn (every mouth shape, breathing included)."""
    from appliance.scene.avatar.character import MOUTH, MOUTH_BOX, SIZE
    from appliance.scene.avatar.view import AvatarView
    x, y, w, h = scene_rect("avatar", scene, size)
    ox, oy, scale = AvatarView.fit((x, y, w, h), SIZE, SIZE)
    left, top = ox + (MOUTH[0] + MOUTH_BOX[0]) * scale, oy + (MOUTH[1] + MOUTH_BOX[1]) * scale
    return round(left), round(top) - 3, round(MOUTH_BOX[2] * scale), round(MOUTH_BOX[3] * scale) + 6


_MEAN = re.compile(r"pts_time:\s*([0-9.]+).*?mean:\[([0-9.]+)")


def dark_track(path: Path, rect: Rect, below: int = 70) -> list[tuple[float, float]]:
    """(time, share of pixels darker than ``below``) of ``rect`` in every decoded video frame."""
    x, y, w, h = rect
    cmd = ["ffmpeg", "-v", "info", "-nostdin", "-i", str(path), "-an", "-fps_mode", "passthrough",
           "-vf", f"crop={w}:{h}:{x}:{y},format=gray,lut=y='if(lt(val,{below}),255,0)',showinfo", "-f", "null", "-"]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stderr
    return [(float(m[1]), float(m[2]) / 255) for m in _MEAN.finditer(err)]


@dataclass
class LipSync:
    """Mouth against voice in a recording: per sentence, the first frame with the mouth open
    minus the first audible sample (s); and the frames of the pauses between sentences."""

    offsets: list[float]
    pause_frames: int
    pause_open: int
    missed: list[Segment]

    def figures(self) -> dict[str, float]:
        import statistics
        ordered = sorted(abs(o) for o in self.offsets)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else float("nan")
        median = statistics.median(self.offsets) if self.offsets else float("nan")
        spread = sorted(abs(o - median) for o in self.offsets)
        return {"sentences": len(self.offsets), "median_abs_ms": round(statistics.median(ordered) * 1000, 1)
                if ordered else float("nan"), "p95_abs_ms": round(p95 * 1000, 1),
                "median_ms": round(median * 1000, 1),
                # how far each sentence is from the stream's own median: what the voice's clock
                # and the renderer decide (the median itself includes the encoder's A/V offset)
                "spread_median_ms": round(statistics.median(spread) * 1000, 1) if spread else float("nan"),
                "spread_p95_ms": round(spread[min(len(spread) - 1, round(0.95 * (len(spread) - 1)))] * 1000, 1)
                if spread else float("nan"),
                "pause_frames": self.pause_frames, "pause_open_frames": self.pause_open}


def lip_sync(recording: Path, *, scene: str = "live", after: float = 0.0, before: float = float("inf"),
             above_db: float = -40.0) -> LipSync:
    """Decode ``recording`` between ``after`` and ``before`` (stream seconds): the sentences are
    the runs of sound (pauses of 0.3 s and more between them)."""
    levels = audio_levels(recording, window_s=0.005)
    heard = [s for s in sound_segments(levels, above_db=above_db, bridge_s=0.3, min_s=0.25)
             if after <= s.start and s.end <= before]
    track = dark_track(recording, mouth_rect(scene))
    opened = [t for t, share in track if share > OPEN_SHARE]
    offsets, missed = [], []
    for segment in heard:
        first = next((t for t in opened if segment.start - 0.3 <= t <= segment.start + 0.4), None)
        if first is None:
            missed.append(segment)
        else:
            offsets.append(first - segment.start)
    pause_frames = pause_open = 0
    for a, b in itertools.pairwise(heard):
        for t, share in track:
            if a.end + 0.1 <= t <= b.start - 0.1:
                pause_frames += 1
                pause_open += share > OPEN_SHARE
    return LipSync(offsets, pause_frames, pause_open, missed)
