"""On-screen text from files: every ``*.txt`` in the overlay folder is shown on the content
window when it is created or changes (watchdog), so an operator or an outside agent can put
text on stream by writing a file — no API call needed.

Each change shows the file's lines (at most ``MAX_LINES``, each sanitized and cut by the
content log) prefixed with the file's name; a file larger than ``MAX_BYTES`` is shown cut.
Unchanged content is not shown twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..sanitize import clean_text

log = logging.getLogger("appliance.overlays")
MAX_BYTES = 8192
MAX_LINES = 20


class OverlayFolder(FileSystemEventHandler):
    """Watches ``folder``; calls ``show(line)`` for each line of a new or changed ``*.txt``."""

    def __init__(self, folder: Path, show: Callable[[str], None]) -> None:
        self.folder = Path(folder)
        self.show = show
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def render(self, path: Path) -> bool:
        """Show ``path`` if it is a changed overlay file; True when something was shown."""
        if path.suffix != ".txt" or path.parent != self.folder or path.name.startswith("."):
            return False
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_BYTES)
        except OSError:
            return False
        lines = [clean_text(line) for line in data.decode("utf-8", "replace").splitlines()]
        lines = [line for line in lines if line][:MAX_LINES]
        if not lines:
            return False  # a truncation before the write (or a cleared file): nothing to show
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        with self._lock:
            if self._seen.get(path.name) == digest:
                return False  # what viewers would see has not changed
            self._seen[path.name] = digest
        name = clean_text(path.stem, 32)
        for line in lines:
            self.show(f"[{name}] {line}")
        return bool(lines)

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.render(Path(str(event.src_path)))

    on_modified = on_created

    def on_moved(self, event: FileSystemEvent) -> None:  # editors save by renaming a temp file
        if not event.is_directory:
            self.render(Path(str(event.dest_path)))

    def start(self) -> "OverlayFolder":
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.folder.glob("*.txt")):
            self.render(path)
        self._observer = Observer()
        self._observer.schedule(self, str(self.folder), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        log.info("showing *.txt written to %s", self.folder)
        return self

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
            self._observer = None
