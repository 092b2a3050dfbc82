"""What every voice engine is: text in, an audio file out (see :mod:`appliance.voice.engines`).

Text is untrusted (viewers write it): it is cleaned with :func:`appliance.core.sanitize.clean_text`
and cut to ``voice.max_chars`` before any engine sees it, and reaches a program only as an
argument after ``--`` or on stdin (never through a shell).

Engines write into the ``workdir`` they are given: the speech queue owns it (a private folder
under ``<state>/cache``, emptied at start and removed at close), so no run leaves audio behind.
:class:`FallbackVoice` speaks with espeak-ng when another engine fails, warning once.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol

from ..core.errors import MediaError
from ..core.proc import Runner, run_tool
from ..core.sanitize import clean_text

SYNTH_TIMEOUT_S = 30.0

__all__ = ["SYNTH_TIMEOUT_S", "FallbackVoice", "Runner", "Voice", "out_file", "run_tool", "spoken"]
log = logging.getLogger("appliance.voice")


class Voice(Protocol):
    """Anything that turns text into an audio file (wav or mp3) inside ``workdir``."""

    name: str

    def synthesize(self, text: str, workdir: Path) -> Path: ...


def spoken(text: str, max_chars: int) -> str:
    """The text as it may be spoken (one clean line, cut); MediaError when nothing is left."""
    value = clean_text(text, max_chars)
    if not value:
        raise MediaError("nothing to say: the text is empty after cleaning")
    return value


def out_file(workdir: Path, suffix: str) -> Path:
    """A new, empty, private file in ``workdir``."""
    fd, name = tempfile.mkstemp(prefix="say-", suffix=suffix, dir=workdir)
    os.close(fd)
    return Path(name)


class FallbackVoice:
    """``primary``, or ``fallback`` (espeak-ng) whenever it fails: one warning when the primary
    starts failing, none again until it has worked once more."""

    def __init__(self, primary: Voice, fallback: Voice | None) -> None:
        self.primary, self.fallback = primary, fallback
        self.name = primary.name
        self.failing = False

    def synthesize(self, text: str, workdir: Path) -> Path:
        try:
            path = self.primary.synthesize(text, workdir)
        except Exception as exc:
            if self.fallback is None:
                raise MediaError(f"{self.primary.name} failed ({_reason(exc)})",
                                 fix="check the engine, or set voice.fallback_to_espeak: true") from None
            if not self.failing:
                log.warning("%s failed (%s): speaking with %s until it works again",
                            self.primary.name, _reason(exc), self.fallback.name)
            self.failing = True
            return self.fallback.synthesize(text, workdir)
        if self.failing:
            log.info("%s works again", self.primary.name)
        self.failing = False
        return path


def _reason(exc: Exception) -> str:
    message = exc.message if isinstance(exc, MediaError) else str(exc)
    return f"{type(exc).__name__}: {clean_text(message, 200)}"
