"""Playing speech into the PulseAudio sink with its clock: libpulse's simple API (ctypes on
``libpulse-simple.so.0``, from the same libpulse0 package pulsectl loads).

Why not ``paplay``: the avatar's mouth must move when the sound is *heard* in the stream, and
only the sink knows when that is. A playback stream reports its latency (``pa_simple_get_latency``:
how long until the last sample written is played by the sink, i.e. reaches the sink's monitor
that FFmpeg records). So after the first write, the moment the wav's first sample plays is

    audible_at = now + latency - seconds of the wav written so far

on ``time.monotonic``, which the scene renderer (another process on the same host) shares. A
stream plays from the moment its first write is in (prebuffer = that write), so each stream
begins with ``LEAD_S`` of silence, written alone: ``audible_at`` is then known ~0.15 s before
the sound, in time for the renderer even on a loaded host (measured: 0.06 s of lead left the
mouth up to 0.2 s late when two cores ran ten processes). Measured against FFmpeg's own
timestamps of the sink's monitor, audible_at is 0-25 ms early with these buffer sizes (0-10 ms
with a 0.1 s buffer, which underran under load); the avatar's ``lead_ms`` is where the whole
chain is calibrated, in the stream itself (bench/avatar.py).

Stopping is prompt: the writer writes ``CHUNK_S`` at a time and checks its stop flag between
writes; a stop flushes what the server still holds. Every call has a bound: the wait for the end
has a timeout; a stream that cannot be opened is a :class:`MediaError`.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

from ..core.errors import MediaError

log = logging.getLogger("appliance.voice")

LATENCY_S = 0.2        # the stream's target buffer: what a stalled writer may lose before the sound breaks
LEAD_S = 0.2           # silence before the speech, its first write
CHUNK_S = 0.02         # one write; a stop takes effect within this
_PLAYBACK = 1          # pa_stream_direction_t
_S16LE = 3             # pa_sample_format_t
_NONE = 0xFFFFFFFF     # (uint32_t) -1: the server's default for a buffer metric


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [("maxlength", ctypes.c_uint32), ("tlength", ctypes.c_uint32), ("prebuf", ctypes.c_uint32),
                ("minreq", ctypes.c_uint32), ("fragsize", ctypes.c_uint32)]


_lib: ctypes.CDLL | None = None
_pulse: ctypes.CDLL | None = None


def _library() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    global _lib, _pulse
    if _lib is None or _pulse is None:
        try:
            lib, pulse = ctypes.CDLL("libpulse-simple.so.0"), ctypes.CDLL("libpulse.so.0")
        except OSError as exc:
            raise MediaError(f"libpulse-simple is not installed ({exc})", fix="install libpulse0") from None
        lib.pa_simple_new.restype = ctypes.c_void_p
        lib.pa_simple_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.POINTER(_SampleSpec), ctypes.c_void_p, ctypes.POINTER(_BufferAttr),
                                      ctypes.POINTER(ctypes.c_int)]
        lib.pa_simple_write.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
        lib.pa_simple_get_latency.restype = ctypes.c_uint64
        lib.pa_simple_get_latency.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        lib.pa_simple_flush.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        lib.pa_simple_free.argtypes = [ctypes.c_void_p]
        pulse.pa_strerror.restype = ctypes.c_char_p
        pulse.pa_strerror.argtypes = [ctypes.c_int]
        _lib, _pulse = lib, pulse
    return _lib, _pulse


def _error(what: str, code: int) -> MediaError:
    _, pulse = _library()
    reason = (pulse.pa_strerror(code) or b"unknown error").decode("utf-8", "replace")
    return MediaError(f"PulseAudio: {what}: {reason}")


class PulsePlaying:
    """One wav file playing; ``audible_at`` (monotonic seconds) is when its first sample is
    heard in the sink. :meth:`wait` until it has been heard to the end, :meth:`stop` cuts it."""

    def __init__(self, handle: int, wav: wave.Wave_read, *, clock: Callable[[], float]) -> None:
        self._handle = handle
        self._wav = wav
        self._clock = clock
        self._frame_bytes = wav.getsampwidth() * wav.getnchannels()
        self._rate = wav.getframerate()
        self.seconds = wav.getnframes() / self._rate if self._rate else 0.0
        self._written = 0          # frames of the wav
        self._stop = threading.Event()
        self._done = threading.Event()
        self.error: MediaError | None = None
        self.audible_at = self._prime()
        self._thread = threading.Thread(target=self._run, name="speech-out", daemon=True)
        self._thread.start()

    def latency(self) -> float:
        lib, _ = _library()
        err = ctypes.c_int(0)
        usec = lib.pa_simple_get_latency(self._handle, ctypes.byref(err))
        if usec == 2**64 - 1:
            raise _error("no latency", err.value)
        return usec / 1e6

    def _write(self, frames: int, *, silence: int = 0) -> int:
        data = b"\0" * (silence * self._frame_bytes) + (self._wav.readframes(frames) if frames else b"")
        if not data:
            return 0
        lib, _ = _library()
        err = ctypes.c_int(0)
        if lib.pa_simple_write(self._handle, data, len(data), ctypes.byref(err)) < 0:
            raise _error("write failed", err.value)
        count = len(data) // self._frame_bytes - silence
        self._written += count
        return count

    def _prime(self) -> float:
        """Fill the stream's buffer (playback starts) and read the sink's clock: the latency is
        how long until the last sample written is played, so the wav's first sample plays
        ``written`` seconds before that."""
        self._write(0, silence=int(self._rate * LEAD_S))
        now = self._clock()
        return now + self.latency() - self._written / self._rate

    def _run(self) -> None:
        lib, _ = _library()
        chunk = max(1, int(self._rate * CHUNK_S))
        try:
            while not self._stop.is_set() and self._write(chunk):
                pass
            # the rest plays out of the server's buffer: wait for it without blocking a stop
            while not self._stop.is_set() and self._clock() < self.end_at():
                self._stop.wait(min(CHUNK_S, max(0.0, self.end_at() - self._clock())))
        except MediaError as exc:
            self.error = exc
        finally:
            if self._stop.is_set():
                lib.pa_simple_flush(self._handle, None)
            lib.pa_simple_free(self._handle)
            self._handle = 0
            self._wav.close()
            self._done.set()

    def end_at(self) -> float:
        """When the last sample is heard (monotonic)."""
        return self.audible_at + self.seconds

    def wait(self, timeout: float) -> None:
        if not self._done.wait(timeout):
            self.stop()
            raise MediaError(f"the speech did not finish within {timeout:.0f}s")
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self._stop.set()


class PulsePlayer:
    """Plays wav files into ``sink``, one stream per sentence (client ``appliance-voice``,
    stream ``speech``), at the voice's level (``volume()``, %, read at each start)."""

    CLIENT = "appliance-voice"

    def __init__(self, sink: str, *, volume: Callable[[], int] = lambda: 100, server: str | None = None,
                 set_level: Callable[[str, float], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink, self.volume, self.server, self.clock = sink, volume, server, clock
        self._set_level = set_level

    def start(self, wav: Path) -> PulsePlaying:
        lib, _ = _library()
        try:
            reader = wave.open(str(wav), "rb")  # noqa: SIM115 (the playing stream closes it)
        except (wave.Error, EOFError, OSError) as exc:
            raise MediaError(f"not a playable wav file: {exc}") from None
        if reader.getsampwidth() != 2:
            reader.close()
            raise MediaError("only 16-bit PCM wav files are played")
        spec = _SampleSpec(_S16LE, reader.getframerate(), reader.getnchannels())
        frame = 2 * reader.getnchannels()
        target = int(reader.getframerate() * LATENCY_S) * frame
        # playback starts with the first write: the lead silence
        prebuf = int(reader.getframerate() * LEAD_S) * frame
        attr = _BufferAttr(_NONE, target, prebuf, int(reader.getframerate() * CHUNK_S) * frame, _NONE)
        err = ctypes.c_int(0)
        handle = lib.pa_simple_new(self.server.encode() if self.server else None, self.CLIENT.encode(), _PLAYBACK,
                                   self.sink.encode(), b"speech", ctypes.byref(spec), None, ctypes.byref(attr),
                                   ctypes.byref(err))
        if not handle:
            reader.close()
            raise _error(f"cannot play into sink {self.sink!r}", err.value)
        level = max(0, min(150, int(self.volume())))
        if level != 100:  # before the first sample: nothing is heard at the wrong level
            try:
                (self._set_level or _stream_level)(self.CLIENT, level)
            except MediaError as exc:
                log.warning("voice level not set: %s", exc.message)
        try:
            return PulsePlaying(handle, reader, clock=self.clock)
        except BaseException:
            lib.pa_simple_free(handle)
            reader.close()
            raise


def _stream_level(client: str, level: float) -> int:
    from ..media.audio import set_stream_level
    return set_stream_level(client, level)
