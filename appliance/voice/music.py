"""An optional background music loop into the sink (``voice.music``), ducked while the agent
speaks: FFmpeg decodes the file in a loop into ``pacat`` (a PulseAudio client named
``appliance-music`` that starts at the configured level, so there is no loud first second);
levels change through pulsectl (:func:`appliance.media.audio.set_stream_level`). A loop that
dies is restarted with a backoff, at most ``MAX_RESTARTS`` times."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from ..core import proc
from ..core.errors import MediaError
from ..media.audio import set_stream_level
from .settings import MusicConfig

log = logging.getLogger("appliance.voice")
CLIENT = "appliance-music"
MAX_RESTARTS = 20


class MusicLoop:
    """Plays ``cfg.file`` in a loop until :meth:`stop`; :meth:`duck` lowers it while speaking."""

    def __init__(self, cfg: MusicConfig, sink: str, sample_rate: int, *,
                 popen: proc.Popen = proc.popen,
                 set_level: Callable[[str, float], int] = set_stream_level) -> None:
        self.cfg, self.sink, self.rate = cfg, sink, sample_rate
        self._popen, self._set_level = popen, set_level
        self._stop = threading.Event()
        self._procs: list[Any] = []
        self._thread: threading.Thread | None = None
        self.ducked = False
        self.restarts = 0

    def commands(self) -> tuple[list[str], list[str]]:
        decode = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-stream_loop", "-1",
                  "-i", str(self.cfg.file), "-vn", "-f", "s16le", "-ar", str(self.rate), "-ac", "2", "-"]
        play = ["pacat", f"--device={self.sink}", f"--client-name={CLIENT}", "--stream-name=music",
                "--format=s16le", f"--rate={self.rate}", "--channels=2",
                f"--volume={self.level() * 65536 // 100}"]
        return decode, play

    def level(self) -> int:
        return self.cfg.duck_to if self.ducked else self.cfg.volume

    def duck(self, on: bool) -> None:
        self.ducked = on
        try:
            self._set_level(CLIENT, self.level())
        except MediaError as exc:
            log.warning("music: %s", exc.message)

    def _once(self) -> int:
        decode, play = self.commands()
        dec = self._popen(decode, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            out = self._popen(play, stdin=dec.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except BaseException:
            dec.kill()
            raise
        if dec.stdout is not None:
            dec.stdout.close()  # the player holds it now
        self._procs = [dec, out]
        code = out.wait()
        dec.kill()
        dec.wait()
        return code

    def _run(self) -> None:
        while not self._stop.is_set() and self.restarts <= MAX_RESTARTS:
            try:
                code = self._once()
            except OSError as exc:
                log.warning("music: cannot start (%s)", exc.strerror)
                code = -1
            if self._stop.is_set():
                return
            self.restarts += 1
            log.warning("music loop ended (code %s); restarting (%d)", code, self.restarts)
            self._stop.wait(min(30.0, 2.0 ** min(self.restarts, 5)))

    def start(self) -> MusicLoop:
        if not self.cfg.file.is_file():
            raise MediaError(f"voice.music.file: {self.cfg.file} is not a file")
        self._thread = threading.Thread(target=self._run, name="music", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for child in self._procs:
            if child.poll() is None:
                child.terminate()
        if self._thread is not None:
            self._thread.join(5)
