"""A low-rate preview of the display (what viewers see) for the console and the MCP screenshot.

One FFmpeg ``x11grab`` at ``control.preview_fps`` (1 by default), scaled to
``control.preview_width`` and written as a stream of JPEGs to a pipe; the newest frame is kept
in memory. It runs only while someone looks: the first :meth:`Preview.frame` starts it and it
stops after ``idle_s`` without a request.

Why this and not a frame grab per request or a copy of the encoded stream (measured here, a
scrolling xterm at 1280x720): a persistent grabber at 1 fps costs 0.9 % of a core (2 fps:
1.45 %), one FFmpeg started per frame 6.9 % (process start-up dominates); a preview of the
encoded stream would need the encoder's output split and decoded again (H.264 decode of
every frame) and a change to the encoder's command line, and x11grab shares nothing with the
encoder but the X server. ``bench/console.py`` measures the whole console's cost and the
encoder's speed while a browser watches.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping

from ..core.errors import MediaError
from ..core.proc import Popen
from ..core.proc import popen as popen_child

log = logging.getLogger("appliance.preview")

SOI, EOI = b"\xff\xd8", b"\xff\xd9"
MAX_FRAME = 2_000_000


def split_jpegs(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole JPEGs at the start of ``buffer`` (FFmpeg's mjpeg: SOI ... EOI, no thumbnails inside)
    and what is left over."""
    frames: list[bytes] = []
    while True:
        start = buffer.find(SOI)
        if start < 0:
            return frames, b""
        end = buffer.find(EOI, start + 2)
        if end < 0:
            return frames, buffer[start:] if len(buffer) - start <= MAX_FRAME else b""
        frames.append(buffer[start:end + 2])
        buffer = buffer[end + 2:]


class Preview:
    """The newest JPEG of ``display``, from a grabber that runs while frames are asked for."""

    def __init__(self, display: str, *, fps: float = 1.0, width: int = 640, idle_s: float = 15.0,
                 env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 popen: Popen = popen_child) -> None:
        self.display, self.fps, self.width, self.idle_s = display, fps, width, idle_s
        self.env = dict(env if env is not None else os.environ)
        self.clock, self.popen = clock, popen
        self._lock = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._frame: bytes | None = None
        self._frame_no = 0
        self._asked = 0.0
        self._closed = False
        self._error = ""

    def command(self) -> list[str]:
        return ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "x11grab", "-draw_mouse", "0",
                "-framerate", f"{self.fps:g}", "-i", self.display, "-vf", f"scale={self.width}:-2",
                "-q:v", "7", "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def frame(self, timeout: float = 5.0, *, newer_than: int = 0) -> tuple[int, bytes]:
        """(number, JPEG) of the newest frame (newer than ``newer_than`` when given); starts the
        grabber if it is not running. MediaError when none comes within ``timeout``."""
        deadline = self.clock() + timeout
        with self._lock:
            if self._closed:
                raise MediaError("the preview is closed")
            self._asked = self.clock()
            if not self.running:
                self._start()
            while self._frame is None or self._frame_no <= newer_than:
                left = deadline - self.clock()
                if left <= 0 or (not self.running and self._frame is None):
                    raise MediaError(f"no preview frame of {self.display} within {timeout:g}s",
                                     fix="is the display up? see the log")
                self._lock.wait(min(left, 0.5))
            return self._frame_no, self._frame

    def _start(self) -> None:
        """Start the grabber from a thread of its own that lives as long as it: the parent-death
        signal is tied to the thread that forks, and the caller is often an HTTP request's
        thread, which ends at once (the grabber died with each request before)."""
        self._frame = None  # a frame from before the grabber stopped is not "now"
        self._error = ""
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), name="preview-read", daemon=True).start()
        started.wait(10)
        if self._proc is None or self._error:
            raise MediaError(f"cannot start the preview's ffmpeg: {self._error or 'no answer'}")
        threading.Thread(target=self._watch, args=(self._proc,), name="preview-idle", daemon=True).start()
        log.info("preview of %s started (%g fps, %d px wide)", self.display, self.fps, self.width)

    def _run(self, started: threading.Event) -> None:
        try:
            self._proc = self.popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, env=self.env)
        except OSError as exc:
            self._proc, self._error = None, exc.strerror or str(exc)
            return
        finally:
            started.set()
        self._read(self._proc)

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        buffer = b""
        if proc.stdout is None:
            raise MediaError("the preview's ffmpeg was started without a pipe")
        while True:
            chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            frames, buffer = split_jpegs(buffer + chunk)
            if frames:
                with self._lock:
                    self._frame = frames[-1]
                    self._frame_no += len(frames)
                    self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop the grabber once nobody asked for ``idle_s``."""
        while proc.poll() is None:
            time.sleep(1.0)
            with self._lock:
                idle = self.clock() - self._asked > self.idle_s or self._closed
            if idle:
                self._stop(proc)
                log.info("preview of %s stopped (nobody watching)", self.display)
                return

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            proc = self._proc
        if proc is not None:
            self._stop(proc)
