"""FFmpeg as a supervised child: the command line, its progress, its health.

:func:`build_command` is the reference command of the retake.tv skill document (section 4)
with one change of input: the audio comes from the PulseAudio sink's monitor (so the voice
is heard without restarting the stream) or, failing that, from ``anullsrc`` (a stream without
an audio track does not play). :func:`reference_command` is the document's command verbatim,
kept for the benchmark (``bench/encode.py``).

:class:`Encoder` starts FFmpeg in its own process group, reads ``-progress pipe:1`` blocks into
:class:`EncoderStats`, keeps the last stderr lines with the stream key redacted, and answers
:meth:`Encoder.health` with running / stalled / exited / stopped.

The RTMP key is a secret. It never reaches a log line, an exception, ``repr``, the stderr
ring buffer, or FFmpeg's argv (which every local user reads in ``/proc/<pid>/cmdline``): for an
``rtmp(s)://`` target FFmpeg writes FLV to an inherited pipe and a
:class:`~appliance.media.rtmp.Publisher` thread of this process publishes it, holding the key.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal

from ..core.errors import MediaError
from ..core.proc import Popen
from ..core.proc import popen as popen_child
from .rtmp import Publisher, RtmpTarget, is_rtmp_url
from .settings import StreamConfig

if TYPE_CHECKING:
    from .simulcast import Simulcast

log = logging.getLogger("appliance.encoder")

FFMPEG = "ffmpeg"
THREAD_QUEUE_SIZE = 512     # reference: before x11grab, "prevents frame drops"; same for pulse
# PulseAudio record fragment, 50 ms (FFmpeg's own default in later versions; 20 ms cost more
# CPU in bench/encode.py). Opening the monitor of an idle null sink still takes up to 2 s
# whatever the fragment: the sink finishes its current long block first.
PULSE_FRAGMENT_S = 0.05
# Input order and timestamps with PulseAudio (measured, see bench/encode.py and the tests):
# FFmpeg opens inputs one after the other and x11grab only reads again once all are open, then
# catches up with a burst of frames that share one timestamp, dropped by the muxer (23 at each
# start when the pulse input was opened after x11grab). So the pulse input goes first.
# Each input is then rebased to its own zero, which shifts audio against video by the time
# between the two opens (0.2-0.3 s measured); both devices stamp packets with the wall clock,
# so -copyts keeps them on one time line and -avoid_negative_ts make_zero (a single offset in
# the muxer for all streams) brings the output back to 0 (FLV timestamps are 32-bit ms).
#
# Audio against video, the same at every start (docs/avatar.md, "Lip sync"; measured by
# bench/avsync.py and held by tests/integration/test_avsync.py: a flash drawn on the display
# when a beep is heard in the sink, both read back from the recording). Two things moved the
# offset by up to ~70 ms from one start to the next, each fixed where it arose:
# * Video: with the encoder's time base at 1/fps, every frame was moved to the nearest slot of
#   a 1/30 s grid fixed to the wall clock, whose phase against x11grab's grabs is random at each
#   start: the picture was up to half a frame early or late for the whole stream. The time base
#   is now the millisecond (FLV's own), so a frame keeps its grab's time.
# * Audio: the pulse demuxer stamps each fragment with the wall clock less PulseAudio's
#   latency. Right after it connects to an idle null sink that latency is reported 0.25-0.4 s
#   too high and drains 50 ms per read, so the first ~10 fragments are stamped early; after
#   that the stamps hold within a few ms. aresample async=1 anchored the audio track on the
#   first fragment and filled only jumps above 0.1 s, so whatever residual (< 0.1 s) the
#   start left stayed for the whole stream. See AUDIO_SYNC.
VIDEO_TIME_BASE = "1/1000"
# Load shedding without the 1/fps grid (which dropped a grab landing in an occupied slot): a
# grab less than this fraction of a frame after the last frame kept is dropped before colour
# conversion and encoding. That is x11grab's catch-up burst after its thread waited for a core
# (back-to-back grabs, 0-8 ms apart); on-time grabs come 16-68 ms apart even with four encoders
# on two cores. Measured beside a CPU hog (bench/avsync.py --overload): encoders fall behind and
# come back as fast as with the grid. (Every grab encoded, without this, was what kept six
# appliances on two cores from ever catching up: README, Density.)
BURST_FRACTION = 0.25
# async=1000: jumps above min_hard_comp (0.1 s) are still filled with silence or cut (only
# the start's, in the silence of an idle sink), smaller differences are absorbed by stretching
# the audio by at most 1000 samples a second (2.3 %) once they exceed min_comp (5 ms: the
# stamps' own jitter stays below it): the track converges on its timestamps within seconds of
# the start and stays there. flags=res runs the resampler from the first sample: without it
# swresample starts the resampler when it first compensates, and its output timestamps jumped
# ahead by ~70 ms there (a gap in the audio track, FFmpeg 5.1).
AUDIO_SYNC = "aresample=async=1000:min_comp=0.005:flags=res"
SWS_FLAGS = "bilinear"
STDERR_LINES = 50
STARTUP_GRACE_S = 10.0      # the first frame may wait for the RTMP handshake
SPEED_WINDOW_S = 10.0       # speed is judged over this window, once this much has been encoded
STOP_TIMEOUT_S = 5.0
PROGRESS_PERIOD_S = 0.1     # -progress every 0.1 s (FFmpeg: 0.5): going live sees the first bytes written sooner


AudioMode = Literal["pulse", "silent"]
HealthState = Literal["stopped", "running", "stalled", "exited"]


# --- command lines ---------------------------------------------------------------------------

def reference_command(display: str, target: str) -> list[str]:
    """The skill document's FFmpeg command, verbatim (section 4, step 3)."""
    return [FFMPEG, "-thread_queue_size", "512",
            "-f", "x11grab", "-video_size", "1280x720", "-framerate", "30", "-i", display,
            "-f", "lavfi", "-i", "anullsrc=channel_layout=stereo:sample_rate=44100",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-b:v", "1500k", "-maxrate", "1500k", "-bufsize", "3000k",
            "-pix_fmt", "yuv420p", "-g", "60",
            "-c:a", "aac", "-b:a", "128k",
            "-f", "flv", target]


def gop_frames(stream: StreamConfig) -> int:
    """Frames between keyframes: framerate x keyframe_s (60 for the reference)."""
    return max(1, round(stream.framerate * stream.keyframe_s))


def video_input(stream: StreamConfig) -> list[str]:
    """The x11grab input; ``-draw_mouse 0`` keeps the cursor off the stream (and saves CPU)."""
    return ["-thread_queue_size", str(THREAD_QUEUE_SIZE),
            "-f", "x11grab", "-draw_mouse", "0",
            "-video_size", f"{stream.width}x{stream.height}",
            "-framerate", str(stream.framerate), "-i", stream.display]


def pulse_fragment_bytes(sample_rate: int) -> int:
    return int(sample_rate * PULSE_FRAGMENT_S) * 4  # 2 channels x 2 bytes


def audio_input(stream: StreamConfig, audio: AudioMode, pulse_source: str | None) -> list[str]:
    """The sink's monitor (``pulse``) or the reference's silent track (``silent``)."""
    if audio == "pulse":
        source = pulse_source or f"{stream.sink}.monitor"
        return ["-thread_queue_size", str(THREAD_QUEUE_SIZE),
                "-f", "pulse", "-sample_rate", str(stream.sample_rate), "-channels", "2",
                "-fragment_size", str(pulse_fragment_bytes(stream.sample_rate)),
                "-i", source]
    return ["-f", "lavfi", "-i", f"anullsrc=channel_layout=stereo:sample_rate={stream.sample_rate}"]


def keyframe_expr(stream: StreamConfig) -> str:
    """Keyframes by time as well as by count: -g alone counts frames, and x11grab's first
    frames can arrive late (a 60-frame GOP measured 2.13 s at a start). A keyframe is forced
    once a frame is (keyframe_s - 1.5 frames) after the last forced one: frames carry their grab
    times (see VIDEO_TIME_BASE), so the frame after that point is due at keyframe_s - half a frame
    and may be up to a frame late before two keyframes are more than keyframe_s apart (measured
    1.967-2.022 s with one frame as the margin). Relative times, so it holds with -copyts'
    wall-clock stamps."""
    threshold = stream.keyframe_s - 1.5 / stream.framerate
    return f"expr:if(isnan(prev_forced_t),1,gte(t-prev_forced_t,{threshold:.4f}))"


def burst_filter(stream: StreamConfig) -> str:
    """Drops a grab that comes less than :data:`BURST_FRACTION` of a frame after the last one
    kept (the first frame is kept)."""
    gap = BURST_FRACTION / stream.framerate
    return f"select=isnan(prev_selected_t)+gte(t-prev_selected_t\\,{gap:.4f})"


def tee_output(target: str, relays: Sequence[str]) -> list[str]:
    """The output for ``target`` plus simulcast copies (appliance/media/simulcast.py): the tee
    muxer, ``target`` first as FLV (its failure still ends FFmpeg), each relay URL an MPEG-TS
    copy that may fail without effect. ``+global_header``: FLV wants the codec headers out of
    band, which tee cannot tell the encoders; ``dump_extra`` puts them back in front of every
    keyframe of the TS copies, so a relay that joins late can start at the next keyframe."""
    if any(c in target for c in "|[]"):
        raise ValueError("the output URL cannot contain '|', '[' or ']' in a tee")
    slaves = [f"[f=flv:onfail=abort]{target}"]
    slaves += [f"[f=mpegts:onfail=ignore:bsfs/v=dump_extra=freq=keyframe]{url}" for url in relays]
    return ["-flags", "+global_header", "-f", "tee", "|".join(slaves)]


def build_command(stream: StreamConfig, target: str, *, audio: AudioMode,
                  pulse_source: str | None = None, progress: str = "pipe:1",
                  relays: Sequence[str] = ()) -> list[str]:
    """The appliance's FFmpeg argv: the reference's output settings, audio from PulseAudio.

    ``target`` is FFmpeg's output: ``pipe:N`` (the publisher's pipe, see :class:`Encoder`), or a
    file for tests. ``relays``: simulcast copies (see :func:`tee_output`).
    """
    if audio not in ("pulse", "silent"):
        raise ValueError(f"audio must be 'pulse' or 'silent', not {audio!r}")
    cmd = [FFMPEG, "-hide_banner", "-nostats", "-loglevel", "info"]
    if progress:
        cmd += ["-progress", progress, "-stats_period", f"{PROGRESS_PERIOD_S:g}"]
    if audio == "pulse":
        # PulseAudio first, and both inputs on one wall clock (see the note at PULSE_FRAGMENT_S)
        cmd += ["-copyts", *audio_input(stream, audio, pulse_source), *video_input(stream)]
    else:
        cmd += video_input(stream) + audio_input(stream, audio, pulse_source)
    # x11grab gives bgr0; the conversion to yuv420p is ~0.05 CPU-s per stream second at
    # 720p30, a quarter of the total. Same size, so the flags only pick the chroma
    # down-sampling filter: bilinear costs ~5% less than the default bicubic (measured).
    cmd += ["-sws_flags", SWS_FLAGS]
    # -fps_mode vfr: FLV's default, but not the tee muxer's (simulcast), whose constant frame
    # rate on a millisecond time base would fill every millisecond with duplicates
    cmd += ["-vf", burst_filter(stream), "-enc_time_base:v", VIDEO_TIME_BASE, "-fps_mode:v", "vfr"]
    cmd += ["-c:v", "libx264", "-preset", stream.preset, "-tune", "zerolatency",
            "-b:v", f"{stream.video_bitrate_k}k", "-maxrate", f"{stream.video_bitrate_k}k",
            "-bufsize", f"{stream.bufsize_k}k", "-pix_fmt", "yuv420p",
            "-g", str(gop_frames(stream)), "-force_key_frames", keyframe_expr(stream)]
    if stream.encoder_threads:
        cmd += ["-threads", str(stream.encoder_threads)]
    if stream.strict_cbr:
        cmd += ["-x264-params", "nal-hrd=cbr"]
    cmd += ["-c:a", "aac", "-b:a", f"{stream.audio_bitrate_k}k",
            "-ar", str(stream.sample_rate), "-ac", "2"]
    if audio == "pulse":
        # the audio track follows its sample count, pulled onto the timestamps (see AUDIO_SYNC)
        cmd += ["-af", AUDIO_SYNC, "-avoid_negative_ts", "make_zero"]
    if relays:
        # tee picks no stream by itself: video first, then audio, as FFmpeg orders them for FLV
        cmd += ["-map", "1:v", "-map", "0:a"] if audio == "pulse" else ["-map", "0:v", "-map", "1:a"]
        return cmd + tee_output(target, relays)
    cmd += ["-f", "flv", target]
    return cmd


# --- secrets ---------------------------------------------------------------------------------

_RTMP_PATH = re.compile(r"(rtmps?://[^/\s'\"|]+/[^/\s'\"|]+/)[^\s'\"|<]+", re.IGNORECASE)


class Redactor:
    """Removes the stream key (and any RTMP stream name) from text."""

    MASK = "<key redacted>"

    def __init__(self, target: str) -> None:
        # the stream name (last path part) is the key; host and app stay visible for diagnosis
        key = target.rstrip("/").rsplit("/", 1)[-1] if "://" in target else ""
        self._secrets = [key] if key else []

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, self.MASK)
        return _RTMP_PATH.sub(lambda m: m.group(1) + self.MASK, text)


# --- progress --------------------------------------------------------------------------------

@dataclasses.dataclass
class EncoderStats:
    """The latest ``-progress`` block."""

    frame: int = 0
    fps: float = 0.0
    speed: float = 0.0           # FFmpeg's own figure: average since start
    drop_frames: int = 0
    dup_frames: int = 0
    bitrate_kbps: float = 0.0
    out_time_s: float = 0.0
    total_size: int = 0          # bytes written to the output
    updated_at: float = 0.0      # clock() when the block arrived; 0 = none yet


@dataclasses.dataclass(frozen=True)
class EncoderHealth:
    """What :meth:`Encoder.health` saw: ``state`` plus a one-line, key-free ``reason``."""

    state: HealthState
    reason: str = ""
    exit_code: int | None = None
    last_stderr: tuple[str, ...] = ()
    audio: str = ""


def _number(value: str) -> float | None:
    match = re.match(r"\s*(-?[0-9.]+)", value)
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def apply_progress(stats: EncoderStats, key: str, value: str) -> None:
    """Fold one ``key=value`` progress line into ``stats`` (unknown keys and N/A are ignored)."""
    number = _number(value)
    if number is None:
        return
    if key in ("frame", "drop_frames", "dup_frames", "total_size"):
        setattr(stats, key, int(number))
    elif key in ("fps", "speed"):
        setattr(stats, key, number)
    elif key == "bitrate":
        stats.bitrate_kbps = number
    elif key == "out_time_us":
        stats.out_time_s = number / 1e6


# --- the child -------------------------------------------------------------------------------

def default_audio_probe(stream: StreamConfig) -> bool:
    """True when PulseAudio answers and has (or can be given) the stream's sink."""
    from . import audio  # pulsectl is only needed when audio comes from PulseAudio
    if not audio.pulse_available():
        return False
    if audio.sink_exists(stream.sink):
        return True
    try:
        audio.ensure_sink(stream.sink, stream.sample_rate)
    except MediaError as exc:
        log.warning("%s", exc)
        return False
    return True


class Encoder:
    """One FFmpeg process at a time, started with :meth:`start` and ended with :meth:`stop`."""

    def __init__(self, stream: StreamConfig, *, popen: Popen = popen_child,
                 clock: Callable[[], float] = time.monotonic,
                 audio_probe: Callable[[StreamConfig], bool] = default_audio_probe,
                 stop_timeout_s: float = STOP_TIMEOUT_S, simulcast: Simulcast | None = None,
                 publisher: Callable[[RtmpTarget], Publisher] = Publisher) -> None:
        self.stream = stream
        self.simulcast = simulcast  # relays started with FFmpeg
        self._popen = popen
        self._new_publisher = publisher
        self._publisher: Publisher | None = None
        self._clock = clock
        self._audio_probe = audio_probe
        self._stop_timeout = stop_timeout_s
        self._lock = threading.Lock()
        self._proc: Any = None
        self._threads: list[threading.Thread] = []
        self._redact: Callable[[str], str] = Redactor("")
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._stats = EncoderStats()
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=256)
        self._started_at = 0.0
        self._first_frame_at: float | None = None
        self._last_advance = 0.0
        self._stopping = False
        self.audio: AudioMode | None = None

    def __repr__(self) -> str:
        state = self.health().state
        pid = self._proc.pid if self._proc is not None else None
        return (f"Encoder(display={self.stream.display!r}, audio={self.audio!r}, pid={pid}, "
                f"state={state!r}, target=<redacted>)")

    # -- control --

    def choose_audio(self) -> AudioMode:
        """The audio input for the next start: the sink monitor, or silence if it is unreachable."""
        if self.stream.audio_source != "pulse":
            return "silent"
        if self._audio_probe(self.stream):
            return "pulse"
        log.warning("PulseAudio or sink %r not reachable: streaming a silent audio track",
                    self.stream.sink)
        return "silent"

    def start(self, target: str) -> None:
        """Start FFmpeg pushing to ``target`` (a secret RTMP URL, or a file); stops a running one
        first. An RTMP target is published by a :class:`Publisher` from FFmpeg's ``pipe:N``."""
        self.stop()
        rtmp = RtmpTarget.parse(target) if is_rtmp_url(target) else None
        audio = self.choose_audio()
        relays = self.simulcast.start() if self.simulcast else []
        redact = Redactor(target)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC) if rtmp else (-1, -1)
        output = f"pipe:{write_fd}" if rtmp else target
        cmd = build_command(self.stream, output, audio=audio, relays=relays)
        try:
            # the child dies with us (core/proc): it never streams on without us, and gets no secret
            proc = self._popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
                               pass_fds=(write_fd,) if rtmp else ())
        except OSError as exc:
            if rtmp:
                os.close(read_fd)
            if self.simulcast:
                self.simulcast.stop()
            raise MediaError(f"cannot start {FFMPEG}: {redact(exc.strerror or str(exc))}",
                             fix="install ffmpeg (Debian package ffmpeg)") from None
        finally:
            if rtmp:
                os.close(write_fd)  # FFmpeg holds the only writer: its end is the publisher's EOF
        publisher = self._new_publisher(rtmp).start(read_fd) if rtmp else None
        now = self._clock()
        with self._lock:
            self._proc, self._redact, self.audio, self._publisher = proc, redact, audio, publisher
            self._stderr.clear()
            self._stats = EncoderStats()
            self._samples.clear()
            self._started_at = self._last_advance = now
            self._first_frame_at = None
            self._stopping = False
            self._threads = [
                threading.Thread(target=self._read_progress, args=(proc.stdout,),
                                 name="ffmpeg-progress", daemon=True),
                threading.Thread(target=self._read_stderr, args=(proc.stderr,),
                                 name="ffmpeg-stderr", daemon=True)]
        for thread in self._threads:
            thread.start()
        log.info("ffmpeg started (pid %s, %dx%d@%d, audio %s)", proc.pid, self.stream.width,
                 self.stream.height, self.stream.framerate, audio)

    def stop(self, timeout: float | None = None) -> int | None:
        """Ask FFmpeg to finish (``q``), then SIGTERM, then SIGKILL; returns its exit code."""
        with self._lock:
            proc, self._stopping = self._proc, True
        if proc is None:
            return None
        timeout = self._stop_timeout if timeout is None else timeout
        if proc.poll() is None:
            try:
                proc.stdin.write(b"q")
                proc.stdin.flush()
            except (OSError, ValueError, AttributeError):
                pass
            code = self._wait(proc, timeout)
            if code is None and self._publisher is not None:
                # blocked on a full pipe (the ingest stopped reading), FFmpeg cannot read q:
                # ending the publish makes its write fail (EPIPE), and it ends as it would have
                self._publisher.stop()
                code = self._wait(proc, timeout)
            if code is None:
                log.warning("ffmpeg (pid %s) ignored q: SIGTERM", proc.pid)
                self._signal(proc, signal.SIGCONT)  # a stopped process would sit on SIGTERM
                self._signal(proc, signal.SIGTERM)
                code = self._wait(proc, timeout)
            if code is None:
                log.warning("ffmpeg (pid %s) ignored SIGTERM: SIGKILL", proc.pid)
                self._signal(proc, signal.SIGKILL)
                code = self._wait(proc, timeout)
        for stream in (proc.stdin,):
            try:
                stream.close()
            except (OSError, ValueError, AttributeError):
                pass
        for thread in self._threads:
            thread.join(timeout=2.0)
        publisher = self._publisher
        if publisher is not None and not publisher.wait(2.0):  # FFmpeg's end is its EOF: it unpublishes
            publisher.stop()
        if self.simulcast:
            self.simulcast.stop()
        log.info("ffmpeg (pid %s) stopped, exit code %s", proc.pid, proc.returncode)
        return proc.returncode

    @staticmethod
    def _wait(proc: Any, timeout: float) -> int | None:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    @staticmethod
    def _signal(proc: Any, sig: signal.Signals) -> None:
        # by pid, never by name: the child is ours
        try:
            proc.send_signal(sig)
        except (ProcessLookupError, OSError):
            pass

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- readers --

    def _read_progress(self, pipe: IO[bytes]) -> None:
        block = EncoderStats()
        for raw in iter(pipe.readline, b""):
            key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
            if key != "progress":
                apply_progress(block, key, value)
                continue
            now = self._clock()
            with self._lock:
                if block.frame > self._stats.frame:
                    self._last_advance = now
                    if self._first_frame_at is None:
                        self._first_frame_at = now
                block.updated_at = now
                self._stats = dataclasses.replace(block)
                self._samples.append((now, block.out_time_s))

    def _read_stderr(self, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            line = self._redact(raw.decode("utf-8", "replace").rstrip())
            if not line:
                continue
            with self._lock:
                self._stderr.append(line)
            log.debug("ffmpeg: %s", line)

    # -- observation --

    def stats(self) -> EncoderStats:
        """A copy of the latest progress figures."""
        with self._lock:
            return dataclasses.replace(self._stats)

    def has_output(self) -> bool:
        """True once FFmpeg has encoded frames and written bytes to its output (with simulcast's
        tee, which reports no size, once media time advanced: the first slave took packets) and,
        for an RTMP target, the publisher has sent media to the ingest."""
        with self._lock:
            wrote = self._stats.frame > 0 and (self._stats.total_size > 0 or self._stats.out_time_s > 0)
            publisher = self._publisher
        return wrote and (publisher is None or publisher.media_sent)

    def publisher_error(self) -> str:
        """Why the publish failed (key-free), or ""."""
        publisher = self._publisher
        return publisher.error if publisher is not None and publisher.failed else ""

    def last_stderr(self) -> list[str]:
        with self._lock:
            return list(self._stderr)

    def window_speed(self) -> float | None:
        """Media seconds per wall second over the last ~10 s (None until that much is known)."""
        with self._lock:
            samples = list(self._samples)
        if len(samples) < 2:
            return None
        now_t, now_out = samples[-1]
        old = [s for s in samples if now_t - s[0] >= SPEED_WINDOW_S]
        if not old:
            return None
        then_t, then_out = old[-1]
        return (now_out - then_out) / (now_t - then_t)

    def health(self) -> EncoderHealth:
        with self._lock:
            proc, stopping = self._proc, self._stopping
            last = tuple(list(self._stderr)[-10:])
            last_advance, first_frame = self._last_advance, self._first_frame_at
            started, frame = self._started_at, self._stats.frame
        audio = self.audio or ""
        if proc is None:
            return EncoderHealth("stopped", "not started", audio=audio)
        code = proc.poll()
        if code is not None:
            if stopping:
                return EncoderHealth("stopped", "stopped on request", code, last, audio)
            tail = " | ".join(last[-3:]) or "no output"
            why = self.publisher_error()
            reason = (f"rtmp: {why} (ffmpeg exited with code {code})" if why
                      else f"ffmpeg exited with code {code}: {tail}")
            return EncoderHealth("exited", reason, code, last, audio)
        now = self._clock()
        if first_frame is None:
            waited = now - started
            if waited > self.stream.stall_after_s + STARTUP_GRACE_S:
                return EncoderHealth("stalled", f"no frame encoded {waited:.0f}s after start",
                                     None, last, audio)
            return EncoderHealth("running", "starting", audio=audio)
        idle = now - last_advance
        if idle > self.stream.stall_after_s:
            return EncoderHealth("stalled", f"frames stuck at {frame} for {idle:.1f}s",
                                 None, last, audio)
        speed = self.window_speed()
        if speed is not None and now - first_frame >= SPEED_WINDOW_S and speed < self.stream.min_speed:
            return EncoderHealth("stalled", f"speed {speed:.2f}x < {self.stream.min_speed}x "
                                 f"over {SPEED_WINDOW_S:.0f}s", None, last, audio)
        return EncoderHealth("running", f"frame {frame}", audio=audio)
