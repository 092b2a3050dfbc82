"""The ``command`` engine: any program that reads the text on stdin and writes WAV (or raw
signed 16-bit little-endian PCM) on stdout — Piper, a cloud TTS script — plugs in without code.

The program runs from an argv list (no shell), with a timeout, no other input than the text,
and its output is checked (a RIFF/WAVE header, or whole PCM frames) before it is played.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

from ..core.errors import MediaError
from .base import Runner, out_file, run_tool, spoken
from .settings import CommandVoiceConfig


class CommandVoice:
    """Runs ``voice.command`` per sentence: text on stdin, audio on stdout."""

    def __init__(self, cfg: CommandVoiceConfig, *, runner: Runner = subprocess.run) -> None:
        self.cfg = cfg
        self.name = f"voice command {Path(cfg.command[0]).name}"
        self._runner = runner

    def synthesize(self, text: str, workdir: Path) -> Path:
        said = spoken(text, self.cfg.max_chars)
        audio = run_tool(list(self.cfg.command), timeout=self.cfg.timeout_s, runner=self._runner,
                         input=said.encode("utf-8"), what=self.name)
        out = out_file(workdir, ".wav")
        try:
            if self.cfg.output == "wav":
                if audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
                    raise MediaError(f"{self.name} wrote no WAV on stdout ({len(audio)} bytes)",
                                     fix="make it write a WAV file to stdout, or set voice.output: raw")
                out.write_bytes(audio)
            else:
                frame = 2 * self.cfg.raw_channels
                usable = len(audio) - len(audio) % frame
                if usable == 0:
                    raise MediaError(f"{self.name} wrote no audio on stdout")
                with wave.open(str(out), "wb") as wav:
                    wav.setnchannels(self.cfg.raw_channels)
                    wav.setsampwidth(2)
                    wav.setframerate(self.cfg.raw_sample_rate)
                    wav.writeframes(audio[:usable])
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return out
