"""Fakes for the speech queue: a voice that writes a short silent WAV, and a player that plays
at once (or waits on a gate). Shared by the unit tests of the queue and the show."""

from __future__ import annotations

import tempfile
import threading
import wave
from pathlib import Path


def write_wav(path: Path, seconds: float = 0.05) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * int(8000 * seconds))
    return path


class FakeVoice:
    name = "fake"

    def __init__(self, log: list) -> None:
        self.log = log

    def synthesize(self, text: str, workdir: Path) -> Path:
        self.log.append(("synth", text))
        _fd, name = tempfile.mkstemp(suffix=".wav", dir=workdir)
        return write_wav(Path(name))


class FakePlayer:
    """Plays instantly unless ``gate`` is given: then each play waits for it."""

    def __init__(self, log: list, gate: threading.Event | None = None) -> None:
        self.log, self.gate = log, gate
        self.stopped = 0

    def start(self, wav: Path):
        self.log.append(("play", wav.name))
        player = self

        class Playing:
            def wait(self, timeout: float) -> None:
                if player.gate is not None:
                    player.gate.wait(timeout)

            def stop(self) -> None:
                player.stopped += 1
                if player.gate is not None:
                    player.gate.set()
        return Playing()
