"""espeak-ng: the offline default voice (voice, rate and pitch from the config)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..core.errors import MediaError
from .base import SYNTH_TIMEOUT_S, Runner, out_file, run_tool, spoken
from .settings import AnyVoiceConfig


class EspeakVoice:
    """espeak-ng writing a wav file: offline, robotic, always there."""

    name = "espeak-ng"

    def __init__(self, cfg: AnyVoiceConfig, *, runner: Runner = subprocess.run,
                 timeout: float = SYNTH_TIMEOUT_S) -> None:
        self.cfg = cfg
        self._runner = runner
        self._timeout = timeout

    def command(self, text: str, out: Path) -> list[str]:
        return ["espeak-ng", "-v", self.cfg.espeak_voice, "-s", str(self.cfg.words_per_minute),
                "-p", str(self.cfg.pitch), "-w", str(out), "--", spoken(text, self.cfg.max_chars)]

    def synthesize(self, text: str, workdir: Path) -> Path:
        said = spoken(text, self.cfg.max_chars)  # nothing to say: no file made
        out = out_file(workdir, ".wav")
        try:
            run_tool(self.command(said, out), timeout=self._timeout, runner=self._runner)
        except MediaError:
            out.unlink(missing_ok=True)
            raise
        return out
