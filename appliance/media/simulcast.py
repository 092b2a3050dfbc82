"""Simulcast: extra outputs (Twitch, YouTube, ...) from the encode that feeds retake.tv.

How (measured against the alternatives, see the README): the encoder's output is FFmpeg's
``tee`` muxer with the retake.tv RTMP URL as its first slave (``onfail=abort``: that stream
failing still ends FFmpeg and the lifecycle restarts it with a fresh key, as without
simulcast) and, per extra output, an MPEG-TS slave to a local UDP port
(``onfail=ignore``; UDP cannot fail, nobody has to listen). One :class:`Relay` per output
reads its port and copies the packets (``-c copy``: no second encode) to the output's RTMP
URL; when that ingest refuses, drops or is down, only the relay exits, and it is started
again after a backoff, from the next keyframe. Plain tee slaves with ``onfail=ignore`` are
never retried (dead until the encoder restarts), and tee's ``use_fifo`` recovery in
FFmpeg 5.1 (Debian bookworm) fails with "Invalid argument" after its first reconnection.

Keys are secrets: read once (the controller's secret store, see :mod:`appliance.core.secrets`) or
from their files at each start, never logged, never in a command line.
The relay's FFmpeg writes FLV to an inherited pipe (``pipe:N``) and a
:class:`~appliance.media.rtmp.Publisher` thread of this process publishes it with the key; every
line a relay prints passes through a :class:`~appliance.media.encoder.Redactor` holding the key.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import proc
from ..core.errors import ConfigError, MediaError
from .encoder import FFMPEG, Redactor
from .rtmp import Publisher, RtmpTarget
from .settings import SimulcastConfig, SimulcastOutput

log = logging.getLogger("appliance.simulcast")

_KEY = re.compile(r"^[A-Za-z0-9_.?=&-]{1,256}$")
UDP_PACKET = 1316           # 7 TS packets: one UDP datagram
STDERR_LINES = 20


def read_key(output: SimulcastOutput, secrets: Mapping[str, str] | None = None) -> str:
    """The stream key of ``output``: from ``secrets`` (the controller's :class:`SecretStore`,
    which read the tree's store or the key file once), else from its file; ConfigError naming
    the output if unusable."""
    where = f"simulcast output {output.name!r}: key_file {output.key_file}"
    ref = output.secret()
    key = secrets.get(ref.name, "") if secrets is not None else ""
    if not key:
        try:
            key = Path(output.key_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read ({exc.strerror})",
                              fix="write the stream key alone in that file, mode 600") from None
    if not _KEY.match(key):
        raise ConfigError(f"{where}: not a stream key (letters, digits and _ . ? = & - only, one line)")
    return key


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_url(port: int) -> str:
    """Where the encoder's tee sends one output's copy of the stream (MPEG-TS over UDP)."""
    return f"udp://127.0.0.1:{port}?pkt_size={UDP_PACKET}"


def relay_command(port: int, output: str) -> list[str]:
    """Copy the MPEG-TS on ``port`` to ``output`` (``pipe:N``, the publisher's pipe) as FLV; no
    re-encode. Leaves after 5 s without a packet (the encoder stopped or restarted)."""
    source = (f"udp://127.0.0.1:{port}?fifo_size=100000&overrun_nonfatal=1&buffer_size=4194304"
              "&timeout=5000000")
    return [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "warning", "-i", source,
            "-map", "0", "-c", "copy", "-f", "flv", output]


@dataclass
class RelayStatus:
    name: str
    state: str = "stopped"      # stopped, starting, running, waiting (to retry)
    attempts: int = 0
    last_error: str = ""


class Relay:
    """Runs :func:`relay_command` for one output until :meth:`stop`, restarting it with a
    doubling backoff (``retry_s`` .. ``retry_max_s``) whenever it exits."""

    def __init__(self, output: SimulcastOutput, port: int, *, retry_s: float, retry_max_s: float,
                 popen: proc.Popen = proc.popen, secrets: Mapping[str, str] | None = None,
                 publisher: Callable[[RtmpTarget], Publisher] | None = None) -> None:
        self.output, self.port, self.secrets = output, port, secrets
        self.retry_s, self.retry_max_s = retry_s, retry_max_s
        self._popen = popen
        self._new_publisher = publisher or (lambda target: Publisher(target, name=f"simulcast {output.name}"))
        self._stop = threading.Event()
        self._proc: Any = None
        self._publisher: Publisher | None = None
        self._thread: threading.Thread | None = None
        self.status = RelayStatus(output.name)
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)

    def start(self) -> Relay:
        self._thread = threading.Thread(target=self._run, name=f"simulcast-{self.output.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        wait = self.retry_s
        while not self._stop.is_set():
            started = time.monotonic()
            self.status.attempts += 1
            self.status.state = "starting"
            try:
                code = self._once()
            except (ConfigError, MediaError) as exc:
                self.status.last_error = exc.message
                code = None
            if self._stop.is_set():
                break
            if time.monotonic() - started > 30:
                wait = self.retry_s  # it ran a while: a fresh failure, not the same one again
            self.status.state = "waiting"
            log.warning("simulcast %s: relay ended (%s); retrying in %.1f s: %s", self.output.name,
                        "not started" if code is None else f"exit {code}", wait, self.status.last_error)
            self._stop.wait(wait)
            wait = min(wait * 2, self.retry_max_s)
        self.status.state = "stopped"

    def _once(self) -> int | None:
        key = read_key(self.output, self.secrets)
        target = RtmpTarget.parse(f"{self.output.url}/{key}")
        redact = Redactor(f"{self.output.url}/{key}")
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            proc = self._popen(relay_command(self.port, f"pipe:{write_fd}"), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                               pass_fds=(write_fd,))
        except OSError as exc:
            os.close(read_fd)
            raise MediaError(f"cannot start {FFMPEG}: {exc.strerror}") from None
        finally:
            os.close(write_fd)
        self._proc = proc
        self._publisher = publisher = self._new_publisher(target).start(read_fd)
        if self._stop.is_set():
            proc.terminate()
        self.status.state = "running"
        for raw in iter(proc.stderr.readline, b"") if proc.stderr is not None else ():
            line = redact(raw.decode("utf-8", "replace").rstrip())
            if line:
                self.stderr.append(line)
                self.status.last_error = line[:300]
                log.debug("simulcast %s: %s", self.output.name, line)
        code = proc.wait()
        if not publisher.wait(5.0):
            publisher.stop()
        if publisher.error:
            self.status.last_error = publisher.error
        return code

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._publisher is not None:
            self._publisher.stop(timeout)  # the relay's next write fails: it ends too
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # by pid: our own child
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None


class Simulcast:
    """The relays of every configured output; :meth:`start` gives the tee slave URLs the encoder
    adds (one UDP port each, fresh at every encoder start)."""

    def __init__(self, cfg: SimulcastConfig, *, popen: proc.Popen = proc.popen,
                 secrets: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self._popen = popen
        self.secrets = secrets  # the controller's SecretStore (keys read once); None: the key files
        self.relays: list[Relay] = []

    def __bool__(self) -> bool:
        return bool(self.cfg.outputs)

    def check(self) -> None:
        """Every key file readable and valid (ConfigError naming the output): before going live."""
        for output in self.cfg.outputs:
            read_key(output, self.secrets)

    def start(self) -> list[str]:
        self.stop()
        self.relays = [Relay(out, free_udp_port(), retry_s=self.cfg.retry_s, retry_max_s=self.cfg.retry_max_s,
                             popen=self._popen, secrets=self.secrets).start() for out in self.cfg.outputs]
        return [local_url(relay.port) for relay in self.relays]

    def stop(self) -> None:
        for relay in self.relays:
            relay.stop()
        self.relays = []

    def status(self) -> list[dict[str, Any]]:
        return [vars(relay.status).copy() for relay in self.relays]
