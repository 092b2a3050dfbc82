"""The sandbox's RTMP ingest: a private nginx with the RTMP module, recording every publish.

:class:`RtmpIngest` writes an ``nginx.conf`` into its own temp folder, starts nginx as a child
process in its own process group (``daemon off``, ``master_process on``), waits until the RTMP
port accepts connections, and stops it by pid (SIGQUIT, then SIGTERM, then SIGKILL to its own
process group) — never by name.

nginx asks the sandbox's HTTP server before accepting a publish (``on_publish``, form field
``name`` = stream key; a non-2xx answer refuses it) and tells it when a publish ends
(``on_publish_done``) and when a recording file is closed (``on_record_done``, field ``path``).

Worker user: when the sandbox runs as root, the config says ``user <that user>;`` so the
workers run as the same user as the sandbox instead of nginx's default ``nobody``. Chosen over
chmod'ing the record folder because the operator may pick any ``record_dir`` (e.g. under a
mode-700 home) whose parent chain we must not loosen, and so recordings belong to the user who
runs the tests. The ingest listens on 127.0.0.1 only. When not root, nginx ignores ``user``
anyway, so the line is left out.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ..core.net import free_port
from ..core.proc import popen

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
DEBIAN_PACKAGES = "nginx libnginx-mod-rtmp"


class IngestError(RuntimeError):
    """nginx is missing or would not start; the message is one line saying what to do."""


def find_nginx(module: Path = RTMP_MODULE) -> str:
    """Path of the nginx binary; :class:`IngestError` naming the packages if it or the module is missing."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)
    if binary is None or not module.exists():
        what = "nginx" if binary is None else f"the RTMP module ({module})"
        raise IngestError(f"{what} not found: install the Debian packages `{DEBIAN_PACKAGES}` "
                          "(apt-get install nginx libnginx-mod-rtmp), or run the sandbox without RTMP (--no-rtmp)")
    return binary


def render_config(*, workdir: Path, record_dir: Path, port: int, callback_base: str,
                  module: Path = RTMP_MODULE, user: str | None = None) -> str:
    user_line = f"user {user};  # workers as the sandbox's own user; see rtmp.py docstring\n" if user else ""
    return f"""# Written by appliance.sandbox.rtmp — the sandbox's private RTMP ingest.
load_module {module};
{user_line}daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;

events {{
    worker_connections 64;
}}

rtmp {{
    access_log {workdir}/rtmp-access.log;
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record all;
            record_path {record_dir};
            record_unique on;
            notify_method post;
            on_publish {callback_base}/on_publish;
            on_publish_done {callback_base}/on_publish_done;
            on_record_done {callback_base}/on_record_done;
        }}
    }}
}}
"""


class RtmpIngest:
    """A private nginx-rtmp ingest; use :meth:`start` / :meth:`stop` or as a context manager."""

    def __init__(self, *, callback_base: str, record_dir: str | Path | None = None, port: int = 0,
                 module: Path = RTMP_MODULE) -> None:
        self.callback_base = callback_base.rstrip("/")
        self.module = module
        self.port = port
        self.workdir: Path | None = None
        self.record_dir: Path | None = Path(record_dir).resolve() if record_dir else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live"

    def start(self, timeout: float = 10.0) -> None:
        binary = find_nginx(self.module)
        self.workdir = Path(tempfile.mkdtemp(prefix="sandbox-nginx-"))
        if self.record_dir is None:
            self.record_dir = self.workdir / "recordings"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        auto_port = not self.port
        for attempt in range(3):
            if auto_port:
                self.port = free_port()  # another process may grab it before nginx binds: retry
            try:
                self._launch(binary, timeout)
                return
            except IngestError as exc:
                if not auto_port or "in use" not in str(exc) or attempt == 2:
                    raise

    def _launch(self, binary: str, timeout: float) -> None:
        if self.workdir is None or self.record_dir is None:
            raise IngestError("the ingest has no work folder: start() makes it")
        user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
        conf = self.workdir / "nginx.conf"
        conf.write_text(render_config(workdir=self.workdir, record_dir=self.record_dir, port=self.port,
                                      callback_base=self.callback_base, module=self.module, user=user))
        (self.workdir / "error.log").unlink(missing_ok=True)
        out = open(self.workdir / "nginx.out", "wb")  # noqa: SIM115 - handed to the child
        try:
            self.proc = popen(  # core/proc: dies with us (no orphaned ingest), no secret in its env
                [binary, "-p", str(self.workdir), "-c", str(conf), "-e", str(self.workdir / "error.log")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Ready = nginx logged that it started its workers (so *it* holds the port) and the port accepts."""
        if self.proc is None or self.workdir is None:
            raise IngestError("nginx is not started")
        log = self.workdir / "error.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise IngestError(f"nginx exited with {self.proc.returncode}: {self.error_tail()}")
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Address already in use" in text:
                self.stop(grace=0)
                raise IngestError(f"RTMP port 127.0.0.1:{self.port} is in use")
            if "start worker process" in text and self._accepts():
                return
            time.sleep(0.05)
        tail = self.error_tail()
        self.stop(grace=0)
        raise IngestError(f"nginx did not listen on 127.0.0.1:{self.port} within {timeout:g}s: {tail}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def error_tail(self, lines: int = 5) -> str:
        if self.workdir is None:
            return ""
        text = ""
        for name in ("nginx.out", "error.log"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace")
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def stop(self, grace: float = 1.0, timeout: float = 3.0) -> None:
        """SIGQUIT (graceful: waits for publishers, so only ``grace`` s), SIGTERM, then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGQUIT, grace), (signal.SIGTERM, timeout)):
            try:
                os.kill(proc.pid, sig)
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # our own child's group (start_new_session)
            except ProcessLookupError:
                pass
            proc.wait(2)

    def recordings(self, done: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Every ``.flv`` in the record folder, oldest first; ``complete`` once nginx closed it."""
        if self.record_dir is None or not self.record_dir.exists():
            return []
        done = done or {}
        files = sorted(self.record_dir.glob("*.flv"), key=lambda p: p.stat().st_mtime)
        return [{"path": str(p), "name": p.name, "bytes": p.stat().st_size, "size": p.stat().st_size,
                 "complete": str(p) in done, **done.get(str(p), {})} for p in files]

    def cleanup(self) -> None:
        """Remove the temp folder (and the recordings, if they live in it)."""
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)  # an operator-chosen record_dir stays
            self.workdir = None

    def __enter__(self) -> RtmpIngest:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
