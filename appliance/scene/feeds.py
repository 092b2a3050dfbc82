"""Text from files: every ``*.txt`` in the feed folder (``overlay.watch_dir``) is on stream as
soon as it is created or changes (watchdog), so an operator or an outside agent puts text on
stream by writing a file — no API call needed. A file feeds the scene's text slot of the same
name (``feed: NAME`` in a scene template, see :mod:`appliance.scene.template`) and, as before
the scene existed, its lines go to the content window too.

A feed is data from a regular file directly in the folder, and nothing else: it is opened with
``O_NOFOLLOW | O_NONBLOCK`` and must be a regular file (``fstat``), so a symlink never puts its
target on stream (``credentials.json``, a Kubernetes Secret) and a FIFO named ``*.txt`` never
hangs start-up. The folder may not be, or be inside, the state folder (where the secrets are).

Each change shows the file's lines (at most ``MAX_LINES``, each sanitized and cut by the
content log) prefixed with the file's name; a file larger than ``MAX_BYTES`` is shown cut.
Unchanged content is not shown twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ..core.errors import ConfigError
from ..core.files import StateLayout
from ..core.sanitize import clean_text

log = logging.getLogger("appliance.overlays")
MAX_BYTES = 8192
MAX_LINES = 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def read_feed(path: Path, max_bytes: int = MAX_BYTES) -> bytes | None:
    """The first ``max_bytes`` of ``path`` if it is a regular file (not a link, FIFO, device,
    folder); None otherwise. Never blocks, never follows a link."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:  # ELOOP: a symlink; ENOENT: gone meanwhile; ENXIO: a socket
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, left = [], max_bytes
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def feed_lines(data: bytes) -> list[str]:
    """The non-empty, cleaned lines of a feed (at most MAX_LINES)."""
    lines = [clean_text(line) for line in data.decode("utf-8", "replace").splitlines()]
    return [line for line in lines if line][:MAX_LINES]


class OverlayFolder(FileSystemEventHandler):
    """Watches ``folder``; for each new or changed ``*.txt`` calls ``show(line)`` per line and
    ``feed(name, text)`` with the whole cleaned text (the scene's text slot ``name``)."""

    def __init__(self, folder: Path, show: Callable[[str], object], *,
                 feed: Callable[[str, str], None] = lambda name, text: None,
                 state: StateLayout | None = None) -> None:
        self.folder = Path(folder)
        self.show = show
        self.feed = feed
        self.state = state
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None

    def render(self, path: Path) -> bool:
        """Show ``path`` if it is a changed feed file; True when something was shown."""
        if path.suffix != ".txt" or path.parent != self.folder or path.name.startswith("."):
            return False
        data = read_feed(path)
        if data is None:
            return False
        lines = feed_lines(data)
        if not lines:
            return False  # a truncation before the write (or a cleared file): nothing to show
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        with self._lock:
            if self._seen.get(path.name) == digest:
                return False  # what viewers would see has not changed
            self._seen[path.name] = digest
        name = clean_text(path.stem, 32)
        self.feed(name, "\n".join(lines))
        for line in lines:
            self.show(f"[{name}] {line}")
        return True

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.render(Path(str(event.src_path)))

    on_modified = on_created

    def on_moved(self, event: FileSystemEvent) -> None:  # editors save by renaming a temp file
        if not event.is_directory:
            self.render(Path(str(event.dest_path)))

    def check_folder(self) -> None:
        """ConfigError when the folder is (or is inside, links resolved) the state folder."""
        if self.state is not None and self.state.contains(self.folder):
            raise ConfigError(f"overlay.watch_dir: {self.folder} is inside the state folder "
                              f"{self.state.root}, where the credentials are",
                              fix="point overlay.watch_dir at a folder of its own (default: the repo's overlays/)")

    def start(self) -> OverlayFolder:
        self.check_folder()
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
