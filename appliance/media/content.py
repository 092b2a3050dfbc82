"""The content window: a file of timestamped lines that an xterm shows with ``tail -F``.

Every line goes through :func:`appliance.core.sanitize.clean_text` first: viewer text must never
drive the terminal (no escape sequences, no control characters). The file is kept under
``max_bytes`` by truncating it; ``tail -F`` notices the truncation and carries on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..core.sanitize import clean_text
from .settings import OverlayConfig


class ContentLog:
    """Appends lines to the file the content window tails."""

    def __init__(self, path: str | os.PathLike[str], max_line_chars: int,
                 max_bytes: int = 1_000_000, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.max_line_chars = max_line_chars
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)

    def format(self, text: object) -> str:
        """``HH:MM:SS text``, one clean line."""
        stamp = time.strftime("%H:%M:%S", time.gmtime(self._clock()))
        return f"{stamp} {clean_text(text, self.max_line_chars)}"

    def write(self, text: object) -> str:
        """Append one line (sanitised and cut); returns the line written."""
        line = self.format(text)
        data = (line + "\n").encode("utf-8")
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size + len(data) > self.max_bytes:
                # truncate in place (same inode): tail -F reports "file truncated" and follows
                with open(self.path, "r+b") as fh:
                    fh.truncate(0)
            with open(self.path, "ab") as fh:
                fh.write(data)
        return line


def content_window_command(path: str | os.PathLike[str], overlay: OverlayConfig,
                           geometry: str = "160x45+0+0") -> list[str]:
    """The reference's content window: an xterm running ``tail -F path`` (argv, no shell)."""
    return ["xterm", "-fa", "Monospace", "-fs", str(overlay.font_size),
            "-bg", "black" if overlay.background.lower() == "#000000" else overlay.background,
            "-fg", overlay.foreground, "-geometry", geometry,
            "-e", "tail", "-F", str(path)]
