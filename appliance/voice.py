"""Text to speech into the PulseAudio sink, heard in the stream without restarting FFmpeg.

A :class:`Voice` turns text into an audio file: :class:`EspeakVoice` (offline, espeak-ng) or
:class:`GttsVoice` (Google's TTS through gTTS, falling back to espeak-ng when it fails).
:class:`Speaker` plays the files into the sink with ``paplay --device=<sink>``, one at a time,
with a bounded number of waiting callers and a timeout on every child process.

Text is untrusted (viewers write it): it is cleaned with
:func:`appliance.sanitize.clean_text`, cut to ``voice.max_chars`` and passed as a separate
argument after ``--`` (never through a shell).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any, Callable, Protocol

from .config import VoiceConfig
from .errors import MediaError
from .sanitize import clean_text

log = logging.getLogger("appliance.voice")

SYNTH_TIMEOUT_S = 30.0
PLAY_MARGIN_S = 10.0     # paplay may take this much longer than the audio itself
MAX_PENDING = 5

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


class Voice(Protocol):
    """Anything that turns text into an audio file (wav or mp3)."""

    def synthesize(self, text: str) -> Path: ...


def run_tool(cmd: list[str], *, timeout: float, runner: Runner = subprocess.run) -> None:
    """Run a media tool; MediaError carrying the tool's own message when it fails."""
    try:
        result = runner(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{cmd[0]} did not finish within {timeout:.0f}s") from None
    except FileNotFoundError:
        raise MediaError(f"{cmd[0]} is not installed") from None
    except OSError as exc:
        raise MediaError(f"cannot run {cmd[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        text = (result.stderr or result.stdout or b"").decode("utf-8", "replace").strip()
        tail = " | ".join(text.splitlines()[-3:]) or f"exit code {result.returncode}"
        raise MediaError(f"{cmd[0]} failed: {tail}")


def _workdir(workdir: Path | None) -> Path:
    return Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="appliance-voice-"))


def _out_file(workdir: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="say-", suffix=suffix, dir=workdir)
    os.close(fd)
    return Path(name)


class EspeakVoice:
    """espeak-ng writing a wav file: offline, robotic, always there."""

    def __init__(self, cfg: VoiceConfig, *, workdir: Path | None = None,
                 runner: Runner = subprocess.run, timeout: float = SYNTH_TIMEOUT_S) -> None:
        self.cfg = cfg
        self.workdir = _workdir(workdir)
        self._runner = runner
        self._timeout = timeout

    def command(self, text: str, out: Path) -> list[str]:
        spoken = clean_text(text, self.cfg.max_chars)
        return ["espeak-ng", "-v", self.cfg.espeak_voice, "-s", str(self.cfg.words_per_minute),
                "-w", str(out), "--", spoken]

    def synthesize(self, text: str) -> Path:
        if not clean_text(text, self.cfg.max_chars):
            raise MediaError("nothing to say: the text is empty after cleaning")
        out = _out_file(self.workdir, ".wav")
        try:
            run_tool(self.command(text, out), timeout=self._timeout, runner=self._runner)
        except MediaError:
            out.unlink(missing_ok=True)
            raise
        return out


def _default_gtts() -> Callable[..., Any]:
    import gtts
    return gtts.gTTS


class GttsVoice:
    """Google TTS through gTTS (an mp3), with espeak-ng as the fallback when enabled."""

    def __init__(self, cfg: VoiceConfig, *, tts_factory: Callable[..., Any] | None = None,
                 fallback: Voice | None = None, workdir: Path | None = None,
                 timeout: float = SYNTH_TIMEOUT_S) -> None:
        self.cfg = cfg
        self.workdir = _workdir(workdir)
        self._factory = tts_factory or _default_gtts()
        self._timeout = timeout
        self.fallback = fallback if fallback is not None else (
            EspeakVoice(cfg, workdir=self.workdir) if cfg.fallback_to_espeak else None)

    def synthesize(self, text: str) -> Path:
        spoken = clean_text(text, self.cfg.max_chars)
        if not spoken:
            raise MediaError("nothing to say: the text is empty after cleaning")
        out = _out_file(self.workdir, ".mp3")
        try:
            self._factory(text=spoken, lang=self.cfg.language, timeout=self._timeout).save(str(out))
            if out.stat().st_size == 0:
                raise MediaError("gTTS wrote an empty file")
            return out
        except Exception as exc:  # noqa: BLE001 - gTTSError, requests errors, anything: fall back
            out.unlink(missing_ok=True)
            reason = f"{type(exc).__name__}: {exc}"
            if self.fallback is None:
                raise MediaError(f"gTTS failed ({reason})",
                                 fix="check the network, or set voice.fallback_to_espeak") from None
            log.warning("gTTS failed (%s): speaking with espeak-ng instead", reason)
            return self.fallback.synthesize(spoken)


def make_voice(cfg: VoiceConfig) -> Voice:
    """The voice the config asks for."""
    if cfg.engine == "gtts":
        return GttsVoice(cfg)
    return EspeakVoice(cfg)


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
