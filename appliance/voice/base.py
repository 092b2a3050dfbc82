"""What every voice engine is: text in, an audio file out (see :mod:`appliance.voice.engines`).

Text is untrusted (viewers write it): engines clean it with
:func:`appliance.sanitize.clean_text`, cut it to ``voice.max_chars`` and pass it as a separate
argument after ``--`` (never through a shell).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from ..media.tools import Runner, run_tool

SYNTH_TIMEOUT_S = 30.0

__all__ = ["Runner", "SYNTH_TIMEOUT_S", "Voice", "run_tool"]


class Voice(Protocol):
    """Anything that turns text into an audio file (wav or mp3)."""

    def synthesize(self, text: str) -> Path: ...


def _workdir(workdir: Path | None) -> Path:
    return Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="appliance-voice-"))


def _out_file(workdir: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="say-", suffix=suffix, dir=workdir)
    os.close(fd)
    return Path(name)
