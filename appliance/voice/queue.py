"""The speaker: plays speech into the PulseAudio sink, heard in the stream without restarting
FFmpeg, one utterance at a time, with a bounded number of waiting callers and a timeout on
every child process (``paplay --device=<sink>``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path
from typing import Callable

from ..errors import MediaError
from ..sanitize import clean_text
from .base import SYNTH_TIMEOUT_S, Runner, Voice, run_tool

log = logging.getLogger("appliance.voice")

PLAY_MARGIN_S = 10.0     # paplay may take this much longer than the audio itself
MAX_PENDING = 5


def wav_seconds(path: Path) -> float:
    """Duration of a wav file (espeak-ng's, or one converted by FFmpeg)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            return wav.getnframes() / rate if rate else 0.0
    except (wave.Error, EOFError, OSError) as exc:
        raise MediaError(f"not a playable wav file: {exc}") from None


class Speaker:
    """Plays speech into the PulseAudio sink, one utterance at a time."""

    def __init__(self, voice: Voice, sink: str, *, runner: Runner = subprocess.run,
                 max_pending: int = MAX_PENDING, clock: Callable[[], float] = time.monotonic) -> None:
        self.voice = voice
        self.sink = sink
        self._runner = runner
        self._clock = clock
        self._max_pending = max_pending
        self._lock = threading.Lock()         # one utterance at a time
        self._count_lock = threading.Lock()
        self._pending = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return self._pending

    def _to_wav(self, path: Path) -> Path:
        if path.suffix.lower() == ".wav":
            return path
        wav = path.with_suffix(".wav")
        run_tool(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                  "-i", str(path), "-ac", "2", str(wav)], timeout=SYNTH_TIMEOUT_S,
                 runner=self._runner)
        path.unlink(missing_ok=True)
        return wav

    def say(self, text: str) -> float:
        """Speak ``text`` into the sink; returns its duration in seconds (0.0 if dropped)."""
        with self._count_lock:
            if self._pending >= self._max_pending:
                self.dropped += 1
                log.warning("voice queue full (%d waiting): dropped %r", self._pending,
                            clean_text(text, 60))
                return 0.0
            self._pending += 1
        try:
            with self._lock:
                return self._speak(text)
        finally:
            with self._count_lock:
                self._pending -= 1

    def _speak(self, text: str) -> float:
        audio = self.voice.synthesize(text)
        wav = audio
        try:
            wav = self._to_wav(audio)
            seconds = wav_seconds(wav)
            run_tool(["paplay", f"--device={self.sink}", str(wav)],
                     timeout=seconds + PLAY_MARGIN_S, runner=self._runner)
            return seconds
        finally:
            for path in {audio, wav}:
                path.unlink(missing_ok=True)


def tools_missing() -> list[str]:
    """The speech tools not installed here (espeak-ng, paplay, ffmpeg)."""
    return [tool for tool in ("espeak-ng", "paplay", "ffmpeg") if shutil.which(tool) is None]
