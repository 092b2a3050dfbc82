"""espeak-ng: the offline default voice."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..config import VoiceConfig
from ..errors import MediaError
from ..sanitize import clean_text
from .base import SYNTH_TIMEOUT_S, Runner, _out_file, _workdir, run_tool


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
