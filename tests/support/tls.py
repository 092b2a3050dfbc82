"""A TLS front for a local plain TCP server, as real RTMPS ingests put one (stunnel, nginx
``stream``, a load balancer) before their RTMP servers: :class:`TlsFront` terminates TLS with a
self-signed certificate for ``localhost``/127.0.0.1 made by the ``openssl`` command, and
:meth:`TlsFront.client_context` is a client context that trusts it (the default one does not)."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class TlsFront:
    """Listens on 127.0.0.1 (``.port``) with TLS and relays each connection to ``backend_port``."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.folder = Path(tempfile.mkdtemp(prefix="test-tls-"))
        self.cert, key = self_signed(self.folder)
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(self.cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.load_verify_locations(self.cert)
        return context

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            tls = self.server_context.wrap_socket(conn, server_side=True)
            backend = socket.create_connection(("127.0.0.1", self.backend_port), timeout=10)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        self._sockets += [tls, backend]
        with tls, backend:
            while not self._stop.is_set():
                ready = [tls] if tls.pending() else select.select([tls, backend], [], [], 0.5)[0]
                try:
                    for src, dst in ((tls, backend), (backend, tls)):
                        if src in ready:
                            data = src.recv(65536)
                            if not data:
                                return
                            dst.sendall(data)
                except (OSError, ssl.SSLError):
                    return

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
