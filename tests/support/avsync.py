"""Audio against video in a recording: a flash on the display at the moment a beep is heard in
the sink, both read back from what the encoder wrote. Shared by
tests/integration/test_avsync.py and bench/avsync.py.

The stimulus has a known timing of its own. The beep is played by the voice's
:class:`~appliance.voice.pulse.PulsePlayer`, whose ``audible_at`` says when its first sample
reaches the sink's monitor (what the encoder records); a window of ours on the display turns
white at that moment (an X round trip says when the server has painted it) and black again.
Each pair is read back from the recording as the first white frame of the window's rectangle
and the first millisecond of the beep above -12 dBFS, and the pair's offset is

    offset = (white frame - beep onset) - (painted - audible_at)

in stream seconds: positive when the picture comes after the sound. That is what a viewer
gets; it includes the wait for the next grab, uniform over a frame (0-33 ms at 30 fps). Its
figure for a start, :attr:`StartResult.offset`, takes that wait out: the picture was painted
after the last black frame and before the first white one, so the stream's own offset
(picture against sound for an event at one instant) lies, for every pair, between
``offset - (white - last black frame)`` and ``offset``; the pairs fall at different phases
of the frames, so the range common to all of them is a few ms wide, and its middle is the
figure. (Without a common range, which a grab delayed after its timestamp can cause, the
pairs' median less half their frame interval.) An encoder that keeps both devices' times
exactly reads what the voice's clock and the demuxer's latency disagree on; what must not
change is that figure from one start to the next.
"""

from __future__ import annotations

import math
import re
import statistics
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xcffib
import xcffib.xproto as xp

from appliance.voice.pulse import PulsePlayer

RATE = 44100
BEEP_S = 0.25
FLASH_S = 0.25
FLASH_RECT = (0, 0, 160, 160)  # x, y, width, height of the flashing window
GAP_S = 0.75                   # between the end of one pair and the next beep's start
AUDIO_WINDOW = 44              # samples per level window: 1 ms at 44.1 kHz
BEEP_ABOVE_DB = -12.0          # the beep is at -6 dBFS; AAC's pre-echo stays far below this
WHITE_ABOVE = 128              # mean luma of the rectangle: black 16, white 235


@dataclass(frozen=True)
class Cue:
    """One pair as played: wall-clock seconds (``time.time``) of the beep's first sample in the
    sink (``audible``) and of the white window being painted (``shown``)."""

    audible: float
    shown: float


@dataclass(frozen=True)
class Pair:
    """One pair read back: ``offset`` as a viewer gets it (seconds, picture minus sound) and
    ``frame``, the interval between the last frame without the flash and the first with it."""

    offset: float
    frame: float


@dataclass
class StartResult:
    """The pairs of one stream start."""

    pairs: list[Pair] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The viewer's offset: median over the pairs."""
        return statistics.median(p.offset for p in self.pairs)

    @property
    def offset(self) -> float:
        """The stream's own offset, without the wait for the next grab (see the module)."""
        low = max(p.offset - p.frame for p in self.pairs)
        high = min(p.offset for p in self.pairs)
        if low <= high:
            return (low + high) / 2
        return statistics.median(p.offset - p.frame / 2 for p in self.pairs)


def beep_wav(path: Path, seconds: float = BEEP_S, freq: float = 1000.0) -> Path:
    """A 16-bit stereo sine at -6 dBFS starting at phase 0 (a sharp onset)."""
    frames = int(RATE * seconds)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        values = [int(16000 * math.sin(2 * math.pi * freq * i / RATE)) for i in range(frames)]
        wav.writeframes(struct.pack(f"<{2 * frames}h", *(v for v in values for _ in (0, 1))))
    return path


class FlashWindow:
    """An override-redirect window on ``display`` (black, on top) that :meth:`white` paints
    white and :meth:`black` paints black again, each returning when the X server has done so."""

    def __init__(self, display: str, rect: tuple[int, int, int, int] = FLASH_RECT) -> None:
        self.conn = xcffib.connect(display=display)
        self.x: xp.xprotoExtension = self.conn.core  # type: ignore[has-type]
        screen = self.conn.get_setup().roots[self.conn.pref_screen]
        self.white_pixel, self.black_pixel = screen.white_pixel, screen.black_pixel
        self.window = self.conn.generate_id()
        x, y, width, height = rect
        self.x.CreateWindow(screen.root_depth, self.window, screen.root, x, y, width, height, 0,
                            xp.WindowClass.InputOutput, screen.root_visual,
                            xp.CW.BackPixel | xp.CW.OverrideRedirect, [self.black_pixel, 1])
        self.x.MapWindow(self.window)
        self._sync()

    def _sync(self) -> None:
        self.x.GetInputFocus().reply()  # a round trip: every request before it is done

    def _paint(self, pixel: int) -> float:
        self.x.ChangeWindowAttributes(self.window, xp.CW.BackPixel, [pixel])
        self.x.ClearArea(False, self.window, 0, 0, 0, 0)
        self._sync()
        return time.time()

    def white(self) -> float:
        return self._paint(self.white_pixel)

    def black(self) -> float:
        return self._paint(self.black_pixel)

    def close(self) -> None:
        self.conn.disconnect()


def play_cues(display: str, sink: str, pairs: int, workdir: Path, *, gap_s: float = GAP_S,
              stop: threading.Event | None = None) -> list[Cue]:
    """Play ``pairs`` beeps into ``sink`` and flash the window at each one's ``audible_at``.
    The gaps vary by a few ms so that the flashes fall at different phases of the capture's
    frames (the half-frame of a single flash then averages out)."""
    beep = beep_wav(workdir / "beep.wav")
    window = FlashWindow(display)
    player = PulsePlayer(sink)
    wall = time.time() - time.monotonic()
    cues: list[Cue] = []
    try:
        for i in range(pairs):
            if stop is not None and stop.is_set():
                break
            playing = player.start(beep)
            at = playing.audible_at
            _sleep_until(at)
            cues.append(Cue(audible=at + wall, shown=window.white()))
            time.sleep(FLASH_S)
            window.black()
            playing.wait(5)
            time.sleep(gap_s + (i % 5) * 0.0071)
    finally:
        window.close()
    return cues


def _sleep_until(deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Sleep to within 2 ms of ``deadline``, then spin (a sleep can overshoot by a scheduler tick)."""
    while (left := deadline - clock()) > 0.002:
        time.sleep(left - 0.002)
    while clock() < deadline:
        pass


def _frame_times(text: str, key: str) -> list[tuple[float, float]]:
    """(pts seconds, value) from ``metadata=mode=print`` output, pts read as an integer in µs."""
    result, t = [], 0.0
    for line in text.splitlines():
        if line.startswith("frame:"):
            match = re.search(r"pts:(-?\d+)", line)
            t = int(match.group(1)) / 1e6 if match else t
        elif line.startswith(key + "="):
            value = line.split("=", 1)[1]
            result.append((t, -math.inf if "inf" in value else float(value)))
    return result


def flash_onsets(recording: Path, rect: tuple[int, int, int, int] = FLASH_RECT) -> list[tuple[float, float]]:
    """(last black frame, first white frame): stream times where the window's rectangle turns white."""
    x, y, width, height = rect
    inner = f"crop={width - 32}:{height - 32}:{x + 16}:{y + 16}"  # away from the edges' chroma
    text = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(recording), "-map", "0:v", "-vf",
         f"settb=1/1000000,{inner},signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file=-",
         "-f", "null", "-"], capture_output=True, text=True, check=True,
        timeout=60 + _duration(recording)).stdout
    onsets, white, last = [], False, -math.inf
    for t, luma in _frame_times(text, "lavfi.signalstats.YAVG"):
        if luma > WHITE_ABOVE and not white:
            onsets.append((last, t))
        white, last = luma > WHITE_ABOVE, t
    return onsets


def _duration(recording: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          str(recording)], capture_output=True, text=True, check=True, timeout=60).stdout
    return float(out.strip() or 0)


def beep_onsets(recording: Path) -> list[float]:
    """Stream times of each beep's first millisecond above ``BEEP_ABOVE_DB``: found roughly by
    ``silencedetect`` (its printed times lose precision in long recordings), then each read in 1 ms
    windows around that time."""
    duration = _duration(recording)
    text = subprocess.run(
        ["ffmpeg", "-nostdin", "-nostats", "-i", str(recording), "-map", "0:a", "-af",
         f"silencedetect=n={BEEP_ABOVE_DB}dB:d=0.02", "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=60 + duration).stderr
    rough = [float(m) for m in re.findall(r"silence_end: (-?[0-9.e+]+)", text)]
    # a recording that ends in silence ends that silence at its last sample: no beep there
    return [_onset_near(recording, t) for t in rough if t < duration - 0.1]


def _onset_near(recording: Path, rough: float) -> float:
    start = max(0.0, rough - 0.1)
    text = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-copyts", "-ss", f"{start:.3f}", "-t", "0.2", "-i", str(recording),
         "-map", "0:a", "-af",
         f"asetnsamples=n={AUDIO_WINDOW},asettb=1/1000000,astats=metadata=1:reset=1,"
         "ametadata=mode=print:key=lavfi.astats.Overall.Peak_level:file=-",
         "-f", "null", "-"], capture_output=True, text=True, check=True, timeout=60).stdout
    for t, level in _frame_times(text, "lavfi.astats.Overall.Peak_level"):
        if t >= rough - 0.05 and level > BEEP_ABOVE_DB:
            return t
    raise AssertionError(f"no beep near {rough:.3f} s in {recording.name}")


def read_pairs(recording: Path, cues: list[Cue]) -> StartResult:
    """Each pair read back from ``recording``, matched in order with the ``cues`` played."""
    seen, heard = flash_onsets(recording), beep_onsets(recording)
    if not (len(seen) == len(heard) == len(cues)):
        raise AssertionError(f"{len(cues)} pairs played, {len(seen)} flashes and {len(heard)} beeps "
                             f"in {recording.name}: {seen} / {heard}")
    return StartResult([Pair(offset=(white - a) - (cue.shown - cue.audible), frame=white - black)
                        for (black, white), a, cue in zip(seen, heard, cues, strict=True)])


def spread(values: list[float]) -> float:
    return max(values) - min(values)


def before_sync_command(cmd: list[str]) -> list[str]:
    """The encoder's command as it was before the offset was fixed (a 1/fps encoder time base,
    ``aresample=async=1``), for same-minute comparisons in the benchmarks."""
    before = list(cmd)
    for option in ("-vf", "-enc_time_base:v", "-fps_mode:v"):
        if option in before:
            at = before.index(option)
            del before[at:at + 2]
    if "-af" in before:
        before[before.index("-af") + 1] = "aresample=async=1"
    return before
