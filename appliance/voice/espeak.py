"""espeak-ng: the offline default voice (voice, rate and pitch from the config), with the timing
of every phoneme it speaks.

The program's own output has no timings (``-x``/``--ipa`` print phonemes without them;
``--pho`` is for MBROLA voices only), so the voice calls libespeak-ng itself (ctypes, the
library the ``espeak-ng`` package installs): ``espeak_Initialize`` in synchronous mode with
phoneme events in IPA, a synth callback that receives the samples and, with them, one event per
phoneme carrying the sample it starts at. Those become lip-sync cues (:mod:`.lipsync`) exact
to the sample. The library is not re-entrant: one synthesis at a time in this process (a lock).
Without the library, the ``espeak-ng`` program speaks and the mouth follows the amplitude.

Text reaches the library as plain UTF-8 (no SSML, no ``[[phoneme]]`` input): it is data.
"""

from __future__ import annotations

import ctypes
import logging
import subprocess
import threading
import wave
from pathlib import Path

from ..core.errors import MediaError
from .base import SYNTH_TIMEOUT_S, Runner, out_file, run_tool, spoken
from .lipsync import Cue, audio_cues, phoneme_cues
from .settings import AnyVoiceConfig

log = logging.getLogger("appliance.voice")

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_RATE, _PITCH = 1, 3
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
MAX_SECONDS = 120.0   # a sentence is ~15 s at most (200 characters): a bound on the buffer


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class EspeakLibrary:
    """libespeak-ng in this process: :meth:`synthesize` gives 16-bit mono samples and the
    (seconds, IPA) of each phoneme. :meth:`load` returns None when the library is not there."""

    _lock = threading.Lock()
    _instance: EspeakLibrary | None = None
    _tried = False

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                          _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
                                          | _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise OSError("espeak_Initialize failed (no espeak-ng-data?)")
        self._pcm = bytearray()
        self._phonemes: list[tuple[float, str]] = []
        self._callback = _Callback(self._receive)  # kept alive as long as the library uses it
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def load(cls) -> EspeakLibrary | None:
        with cls._lock:
            if not cls._tried:
                cls._tried = True
                try:
                    cls._instance = cls(ctypes.CDLL("libespeak-ng.so.1"))
                except (OSError, AttributeError) as exc:
                    log.warning("libespeak-ng not usable (%s): espeak-ng speaks without phoneme timings", exc)
        return cls._instance

    def _receive(self, wav: object, count: int, events: object) -> int:
        if count > 0 and len(self._pcm) < MAX_SECONDS * self.rate * 2:
            self._pcm.extend(ctypes.string_at(wav, count * 2))  # type: ignore[arg-type]
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:  # type: ignore[index]
            event = events[i]  # type: ignore[index]
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._phonemes.append((event.sample / self.rate, name))
            i += 1
        return 0

    def synthesize(self, text: str, *, voice: str, rate: int, pitch: int) -> tuple[bytes, list[tuple[float, str]]]:
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._pcm, self._phonemes = bytearray(), []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise MediaError(f"espeak-ng has no voice {voice!r}", fix="see `espeak-ng --voices`")
            self.lib.espeak_SetParameter(_RATE, rate, 0)
            self.lib.espeak_SetParameter(_PITCH, pitch, 0)
            buffer = ctypes.create_string_buffer(data, len(data))
            status = self.lib.espeak_Synth(buffer, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE,
                                           None, None)
            if status != 0:
                raise MediaError(f"espeak-ng could not speak (error {status})")
            return bytes(self._pcm), list(self._phonemes)


class EspeakVoice:
    """espeak-ng writing a wav file, and the mouth shapes of what it says: offline, robotic,
    always there."""

    name = "espeak-ng"

    def __init__(self, cfg: AnyVoiceConfig, *, runner: Runner = subprocess.run,
                 timeout: float = SYNTH_TIMEOUT_S, library: EspeakLibrary | bool | None = True) -> None:
        self.cfg = cfg
        self._runner = runner
        self._timeout = timeout
        self._library = library   # True: load it when first needed; None/False: the program only

    def command(self, text: str, out: Path) -> list[str]:
        return ["espeak-ng", "-v", self.cfg.espeak_voice, "-s", str(self.cfg.words_per_minute),
                "-p", str(self.cfg.pitch), "-w", str(out), "--", spoken(text, self.cfg.max_chars)]

    def synthesize(self, text: str, workdir: Path) -> Path:
        return self.synthesize_timed(text, workdir)[0]

    def synthesize_timed(self, text: str, workdir: Path) -> tuple[Path, list[Cue]]:
        """The wav file and its lip-sync cues (from the phonemes when the library is there)."""
        said = spoken(text, self.cfg.max_chars)  # nothing to say: no file made
        out = out_file(workdir, ".wav")
        library = EspeakLibrary.load() if self._library is True else self._library or None
        try:
            if library is None:
                run_tool(self.command(said, out), timeout=self._timeout, runner=self._runner)
                return out, audio_cues(out)
            pcm, phonemes = library.synthesize(said, voice=self.cfg.espeak_voice,
                                               rate=self.cfg.words_per_minute, pitch=self.cfg.pitch)
            if not pcm:
                raise MediaError("espeak-ng produced no audio")
            with wave.open(str(out), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(library.rate)
                wav.writeframes(pcm)
            return out, phoneme_cues(phonemes, len(pcm) / 2 / library.rate)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
