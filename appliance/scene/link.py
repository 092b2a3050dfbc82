"""How the controller talks to the renderer: a unix stream socket in the tree's private runtime
folder (``$APPLIANCE_RUNTIME_DIR/scene.sock``, mode 600 in a mode-700 folder; the renderer
also checks the peer's uid with ``SO_PEERCRED``). One message kind: a full
:class:`~appliance.scene.model.SceneState` as one JSON line (at most ``MAX_LINE`` bytes).
Snapshots make the protocol forgiving: a renderer restarted by supervisord is whole again
after the next line, and the controller's link sends the latest snapshot on every (re)connect.

The renderer never trusts the content: a line that is too long, not JSON, or not a valid
state closes that connection (logged once), and every string is validated and cleaned again
before it is drawn. The controller never blocks on the renderer: :meth:`SceneLink.send` only
stores the newest snapshot; a thread delivers it (coalescing bursts), with a send timeout and
a capped, interruptible reconnect backoff.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path

from pydantic import ValidationError

from .model import SceneState

log = logging.getLogger("appliance.scene")
MAX_LINE = 256 * 1024
MAX_CLIENTS = 4
SEND_TIMEOUT_S = 2.0


# --- the renderer's side ----------------------------------------------------------------------

class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""


class SceneServer:
    """Listens on ``path``; :meth:`read` returns the newest valid state received (or None)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.sock.listen(MAX_CLIENTS)
        self.sock.setblocking(False)
        self.clients: dict[int, _Client] = {}

    def fileno(self) -> int:
        return self.sock.fileno()

    def fds(self) -> list[int]:
        return [self.sock.fileno(), *self.clients]

    def accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.getuid() or len(self.clients) >= MAX_CLIENTS:
            log.warning("scene socket: refused a connection (uid %d, %d clients)", uid, len(self.clients))
            conn.close()
            return
        conn.setblocking(False)
        self.clients[conn.fileno()] = _Client(conn)

    def _drop(self, fd: int, why: str) -> None:
        client = self.clients.pop(fd, None)
        if client is not None:
            if why:
                log.warning("scene socket: closed a connection: %s", why)
            client.sock.close()

    def read(self, fd: int) -> SceneState | None:
        """Read what ``fd`` has; the last complete valid state in it (or None)."""
        client = self.clients.get(fd)
        if client is None:
            return None
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return None
        except OSError as exc:
            self._drop(fd, str(exc))
            return None
        if not data:
            self._drop(fd, "")
            return None
        client.buffer += data
        newest = None
        while b"\n" in client.buffer:
            line, client.buffer = client.buffer.split(b"\n", 1)
            try:
                newest = SceneState.model_validate(json.loads(line))
            except (ValueError, ValidationError) as exc:
                self._drop(fd, f"not a scene state ({type(exc).__name__})")
                return newest
        if len(client.buffer) > MAX_LINE:
            self._drop(fd, f"a line longer than {MAX_LINE} bytes")
        return newest

    def close(self) -> None:
        for fd in list(self.clients):
            self._drop(fd, "")
        self.sock.close()
        self.path.unlink(missing_ok=True)


# --- the controller's side --------------------------------------------------------------------

class SceneLink:
    """Delivers the newest :class:`SceneState` to the renderer at ``path`` (see the module)."""

    def __init__(self, path: Path, *, backoff_max_s: float = 5.0) -> None:
        self.path = Path(path)
        self.backoff_max_s = backoff_max_s
        self._latest: bytes | None = None
        self._sent: bytes | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="scene-link", daemon=True)
        self.delivered = 0

    def start(self) -> SceneLink:
        self._thread.start()
        return self

    def send(self, state: SceneState) -> None:
        line = state.model_dump_json().encode() + b"\n"
        if len(line) > MAX_LINE:
            log.warning("scene state of %d bytes not sent (max %d)", len(line), MAX_LINE)
            return
        with self._lock:
            self._latest = line
        self._wake.set()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(SEND_TIMEOUT_S)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        return sock

    def _run(self) -> None:
        delay = 0.1
        warned = False
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            with self._lock:
                line = self._latest
                self._wake.clear()
            if line is None:
                continue
            try:
                if self._sock is None:
                    self._sock = self._connect()
                    log.info("scene: connected to the renderer at %s", self.path)
                    warned = False
                self._sock.sendall(line)
                self.delivered += 1
                delay = 0.1
            except OSError as exc:
                if self._sock is not None:
                    self._sock.close()
                    self._sock = None
                if not warned:
                    log.warning("scene: renderer not reachable at %s (%s); retrying", self.path, exc.strerror or exc)
                    warned = True
                self._wake.set()  # deliver the newest once it answers
                self._stop.wait(delay)
                delay = min(self.backoff_max_s, delay * 2)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(3)
        if self._sock is not None:
            self._sock.close()
