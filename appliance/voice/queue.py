"""The speech queue: what the agent says, in order of importance, one utterance at a time, into
the PulseAudio sink (heard in the stream without restarting FFmpeg). Nothing here blocks the
caller: :meth:`SpeechQueue.say` returns an :class:`Utterance` at once (its id and place in the
queue); :meth:`Utterance.wait` is there for callers that want to block.

Priorities: ``operator`` (the control API, the CLI) > ``reply`` (answers to chat) >
``proactive`` (lines the agent says by itself). Higher first; first come first served within one.

Bound and drop policy (``voice.queue_max`` waiting utterances; the one speaking is not counted):
  * a new utterance that finds the queue full evicts the newest waiting one of the lowest
    priority, if that priority is lower than its own; otherwise the new one is dropped. So an
    operator's line is never dropped for chat, and a full queue of operator lines drops
    the newcomer (the operator hears that as ``dropped``).
  * a ``reply`` or ``proactive`` utterance that waited longer than ``voice.max_wait_s`` is
    dropped when its turn comes (chat has moved on); an operator's line is always spoken.
  * :meth:`flush` drops everything waiting; :meth:`interrupt` stops the one speaking now.
Dropped utterances finish with status ``dropped`` (and an ``utterance_dropped`` event).

Long text is split at sentence boundaries: sentence n+1 is synthesised while sentence n
plays, so the first sentence is heard as soon as it alone is ready. Events go to the injected
``on_event(kind, data)``: ``utterance_started`` / ``utterance_finished`` (id, text, ...),
``sentence_started`` / ``sentence_finished`` (id, index, text: what the caption bar shows),
``utterance_dropped``. ``sentence_started`` is emitted when the sentence's audio starts to play,
not when it is queued, with what the mouth does: ``audible_at`` (``time.monotonic`` seconds
when its first sample is heard in the sink, as the player reads the sink's clock) and ``cues``
(``[[seconds, mouth shape], ...]`` from that moment, see :mod:`.lipsync`).

Every child has a timeout; the queue owns the folder the engines write into (emptied at start,
removed at :meth:`close`), so no run leaves audio files behind.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import re
import shutil
import subprocess
import threading
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..core import proc
from ..core.errors import InputError, MediaError
from ..core.sanitize import clean_text
from .base import SYNTH_TIMEOUT_S, Runner, Voice, run_tool
from .lipsync import Cue, audio_cues

log = logging.getLogger("appliance.voice")

PLAY_MARGIN_S = 10.0          # paplay may take this much longer than the audio itself
MAX_PENDING = 8
MAX_SENTENCE_CHARS = 200      # a longer sentence is cut at a comma or a space
EventSink = Callable[[str, dict[str, Any]], object]

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])")


class Priority(enum.IntEnum):
    """Lower value = spoken first."""

    OPERATOR = 0
    REPLY = 1
    PROACTIVE = 2

    @classmethod
    def parse(cls, value: str | Priority) -> Priority:
        if isinstance(value, Priority):
            return value
        try:
            return cls[str(value).upper()]
        except KeyError:
            raise InputError(
                f"priority must be one of operator, reply, proactive (not {clean_text(value, 20)!r})") from None


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences of ``text`` (a sentence longer than ``max_chars`` is cut at a comma or space)."""
    out: list[str] = []
    for part in _SENTENCE_END.split(text):
        part = part.strip()
        while len(part) > max_chars:
            cut = max(part.rfind(", ", 0, max_chars), part.rfind(" ", 0, max_chars))
            cut = cut + 1 if cut > max_chars // 3 else max_chars
            out.append(part[:cut].strip())
            part = part[cut:].strip()
        if part:
            out.append(part)
    return out


def wav_seconds(path: Path) -> float:
    """Duration of a wav file (espeak-ng's, or one converted by FFmpeg)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            return wav.getnframes() / rate if rate else 0.0
    except (wave.Error, EOFError, OSError) as exc:
        raise MediaError(f"not a playable wav file: {exc}") from None


def tools_missing() -> list[str]:
    """The speech tools not installed here (espeak-ng, paplay, ffmpeg)."""
    return [tool for tool in ("espeak-ng", "paplay", "ffmpeg") if shutil.which(tool) is None]


# --- playing ----------------------------------------------------------------------------------

class Playing(Protocol):
    def wait(self, timeout: float) -> None: ...
    def stop(self) -> None: ...


class Player(Protocol):
    """Plays a wav file; the :class:`Playing` it returns may carry ``audible_at`` (monotonic
    seconds when the first sample is heard: :class:`appliance.voice.pulse.PulsePlayer`)."""

    def start(self, wav: Path) -> Playing: ...


@runtime_checkable
class TimedVoice(Protocol):
    """An engine that also tells what the mouth does (espeak-ng's phoneme timings)."""

    def synthesize_timed(self, text: str, workdir: Path) -> tuple[Path, list[Cue]]: ...


class Speech(Protocol):
    """The voice as the rest of the appliance uses it (the control API's say and /voice, the
    chat's replies): :class:`SpeechQueue` is the one implementation."""

    def say(self, text: str, priority: Priority | str = ...) -> Utterance: ...
    def flush(self) -> int: ...
    def interrupt(self) -> bool: ...
    def pending(self) -> int: ...
    def current(self) -> Utterance | None: ...
    def close(self, timeout: float = ...) -> None: ...


class _Paplay:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def wait(self, timeout: float) -> None:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise MediaError(f"paplay did not finish within {timeout:.0f}s") from None
        if self.proc.returncode not in (0, -15):
            tail = clean_text((err or b"").decode("utf-8", "replace"), 200) or f"exit code {self.proc.returncode}"
            raise MediaError(f"paplay failed: {tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()


class PaplayPlayer:
    """``paplay`` into the sink, one process per sentence, at the voice's level (``volume()``,
    in %, read at each start so a change applies from the next sentence on)."""

    CLIENT = "appliance-voice"

    def __init__(self, sink: str, *, volume: Callable[[], int] = lambda: 100,
                 popen: proc.Popen = proc.popen) -> None:
        self.sink, self.volume, self._popen = sink, volume, popen

    def start(self, wav: Path) -> Playing:
        level = max(0, min(150, int(self.volume()))) * 65536 // 100
        try:
            proc = self._popen(["paplay", f"--device={self.sink}", f"--client-name={self.CLIENT}",
                                "--stream-name=speech", f"--volume={level}", str(wav)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        except OSError as exc:
            raise MediaError(f"cannot run paplay: {exc.strerror}",
                             fix="install pulseaudio-utils") from None
        return _Paplay(proc)


# --- the queue --------------------------------------------------------------------------------

@dataclass(eq=False)
class Utterance:
    """One thing to say; ``status``: queued, speaking, spoken, interrupted, dropped, failed."""

    id: str
    text: str
    priority: Priority
    sentences: list[str]
    queued_at: float
    position: int = 0          # utterances ahead of it when queued (0: next)
    status: str = "queued"
    seconds: float = 0.0       # audio played
    error: str = ""
    stop: bool = field(default=False, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until it was spoken, dropped or failed; False on timeout."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "position": self.position,
                "priority": self.priority.name.lower(), "sentences": len(self.sentences),
                "seconds": round(self.seconds, 2), **({"error": self.error} if self.error else {})}


class SpeechQueue:
    """Speaks :class:`Utterance` s one at a time (see the module's docstring for the policy)."""

    def __init__(self, voice: Voice, player: Player, *, workdir: Path,
                 on_event: EventSink = lambda kind, data: None, max_pending: int = MAX_PENDING,
                 max_wait_s: float = 60.0, max_chars: int = 400, runner: Runner = subprocess.run,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.voice, self.player = voice, player
        self.workdir = Path(workdir)
        self.on_event = on_event
        self.max_pending, self.max_wait_s, self.max_chars = max_pending, max_wait_s, max_chars
        self._runner, self._clock = runner, clock
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, Utterance]] = []
        self._seq = itertools.count()
        self._current: Utterance | None = None
        self._playing: Playing | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    # -- the caller's side --

    def start(self) -> SpeechQueue:
        shutil.rmtree(self.workdir, ignore_errors=True)  # what a crash left
        self.workdir.mkdir(parents=True, mode=0o700)
        self._thread = threading.Thread(target=self._run, name="speech", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> SpeechQueue:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def say(self, text: str, priority: Priority | str = Priority.OPERATOR) -> Utterance:
        """Queue ``text``; returns at once. The utterance's status is ``dropped`` when the
        policy refused it; InputError when nothing is left of the text after cleaning."""
        prio = Priority.parse(priority)
        clean = clean_text(text, self.max_chars)
        sentences = split_sentences(clean)
        if not sentences:
            raise InputError("nothing to say: the text is empty after cleaning")
        utt = Utterance(uuid.uuid4().hex[:12], clean, prio, sentences, self._clock())
        victim: Utterance | None = None
        with self._cond:
            if self._closed:
                raise MediaError("the voice is closed")
            if len(self._heap) >= self.max_pending:
                victim = max((item[2] for item in self._heap),
                             key=lambda u: (u.priority, u.queued_at))
                if victim.priority > prio:
                    self._heap = [item for item in self._heap if item[2] is not victim]
                    heapq.heapify(self._heap)
                else:
                    victim = utt
            if victim is not utt:
                utt.position = sum(1 for item in self._heap if item[2].priority <= prio) + \
                    (1 if self._current is not None else 0)
                heapq.heappush(self._heap, (int(prio), next(self._seq), utt))
                self._cond.notify()
        if victim is not None:
            self._drop(victim, "the queue is full")
        return utt

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def current(self) -> Utterance | None:
        return self._current

    def flush(self) -> int:
        """Drop everything waiting (not the one speaking); how many were dropped."""
        with self._cond:
            dropped, self._heap = [item[2] for item in self._heap], []
        for utt in dropped:
            self._drop(utt, "flushed")
        return len(dropped)

    def interrupt(self) -> bool:
        """Stop the utterance speaking now (the rest of its sentences too); False if none."""
        with self._cond:
            utt, playing = self._current, self._playing
            if utt is None:
                return False
            utt.stop = True
        if playing is not None:
            playing.stop()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop speaking, drop what waits, end the worker, remove the work folder."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.flush()
        self.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the worker --

    def _emit(self, kind: str, utt: Utterance, **extra: Any) -> None:
        data = {"id": utt.id, "text": utt.text, "priority": utt.priority.name.lower(), **extra}
        try:
            self.on_event(kind, data)
        except Exception:
            log.exception("voice event listener failed on %s", kind)

    def _drop(self, utt: Utterance, why: str) -> None:
        utt.status, utt.error = "dropped", why
        self.dropped += 1
        log.warning("voice: dropped %s line (%s): %r", utt.priority.name.lower(), why, clean_text(utt.text, 60))
        self._emit("utterance_dropped", utt, reason=why)
        utt._done.set()

    def _next(self) -> Utterance | None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return None
                utt = heapq.heappop(self._heap)[2]
                stale = (utt.priority is not Priority.OPERATOR
                         and self._clock() - utt.queued_at > self.max_wait_s)
                if not stale:
                    self._current = utt
                    return utt
            self._drop(utt, f"waited more than {self.max_wait_s:.0f}s")

    def _run(self) -> None:
        while (utt := self._next()) is not None:
            try:
                self._speak(utt)
            except Exception as exc:
                utt.status, utt.error = "failed", str(exc)
                log.exception("voice: speaking failed")
            finally:
                with self._cond:
                    self._current, self._playing = None, None
                self._emit("utterance_finished", utt, status=utt.status, seconds=round(utt.seconds, 2))
                utt._done.set()

    def _synth(self, utt: Utterance, index: int) -> tuple[Path, list[Cue]] | None:
        """Sentence ``index`` as a wav file and its mouth cues (from the engine's timings, else
        from the audio's envelope); None when it cannot be synthesised."""
        if index >= len(utt.sentences) or utt.stop:
            return None
        try:
            if isinstance(self.voice, TimedVoice):
                audio, cues = self.voice.synthesize_timed(utt.sentences[index], self.workdir)
                return self._to_wav(audio), cues
            wav = self._to_wav(self.voice.synthesize(utt.sentences[index], self.workdir))
            try:
                return wav, audio_cues(wav)
            except (ValueError, EOFError, OSError, wave.Error):
                return wav, []
        except MediaError as exc:
            utt.error = exc.message
            log.warning("voice: sentence %d of %s not spoken: %s", index + 1, utt.id, exc.message)
            return None

    def _to_wav(self, path: Path) -> Path:
        if path.suffix.lower() == ".wav":
            return path
        wav = path.with_suffix(".wav")
        try:
            run_tool(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                      "-i", str(path), "-ac", "2", str(wav)], timeout=SYNTH_TIMEOUT_S,
                     runner=self._runner)
        finally:
            path.unlink(missing_ok=True)
        return wav

    def _speak(self, utt: Utterance) -> None:
        utt.status = "speaking"
        spoken = 0
        ready = self._synth(utt, 0)
        for index, sentence in enumerate(utt.sentences):
            made, ready = ready, None
            if utt.stop:
                if made is not None:
                    made[0].unlink(missing_ok=True)
                break
            if made is None:
                ready = self._synth(utt, index + 1)
                continue
            wav, cues = made
            try:
                seconds = wav_seconds(wav)
                playing = self.player.start(wav)
                # when the first sample is heard: the player's reading of the sink's clock, or
                # (a player without one) now
                audible_at = getattr(playing, "audible_at", None)
                audible_at = audible_at if isinstance(audible_at, float) else time.monotonic()
                with self._cond:
                    self._playing = playing
                if spoken == 0:  # waited_s: queued -> its audio starts (/metrics say_audible_seconds)
                    self._emit("utterance_started", utt, waited_s=round(self._clock() - utt.queued_at, 3))
                self._emit("sentence_started", utt, index=index, sentence=sentence, seconds=round(seconds, 2),
                           audible_at=audible_at, cues=[[c.t, c.shape] for c in cues])
                ready = self._synth(utt, index + 1)  # the next one while this one plays
                try:
                    playing.wait(seconds + PLAY_MARGIN_S)
                finally:
                    self._emit("sentence_finished", utt, index=index, sentence=sentence)
                utt.seconds += seconds
                spoken += 1
            finally:
                wav.unlink(missing_ok=True)
        if ready is not None:
            ready[0].unlink(missing_ok=True)
        if utt.stop:
            utt.status = "interrupted"
        elif spoken == 0:
            utt.status = "failed"
            utt.error = utt.error or "no sentence could be synthesised"
        else:
            utt.status = "spoken"
