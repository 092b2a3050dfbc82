"""Real media processes for tests: a private Xvfb display and a private PulseAudio daemon.

Imported by conftest.py: ``from tests.support.media import xvfb_display, pulse_server,
flv_target, require``.

Both are session fixtures that never touch the display :99 or the user's PulseAudio: Xvfb gets
a free display number (lock file and socket checked, retried on a clash), PulseAudio a temp
``XDG_RUNTIME_DIR``/``PULSE_RUNTIME_PATH`` and its own unix socket, exported as
``PULSE_SERVER`` for the children the tests start. Processes are stopped by pid.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from appliance.media.content import ContentLog, content_window_command
from appliance.media.display import display_taken
from appliance.media.settings import OverlayConfig

PACKAGES = {"Xvfb": "xvfb", "xdpyinfo": "x11-utils", "pulseaudio": "pulseaudio",
            "pactl": "pulseaudio-utils", "paplay": "pulseaudio-utils", "ffmpeg": "ffmpeg",
            "ffprobe": "ffmpeg", "espeak-ng": "espeak-ng", "scrot": "scrot", "xterm": "xterm",
            "nginx": "nginx", "xdotool": "xdotool"}


def require(*binaries: str) -> None:
    """Skip the test when a binary is absent, naming the Debian package that provides it; with
    ``TEST_REQUIRE_ALL=1`` (the fresh-machine run in .ci/run) fail instead: there, a missing
    program is a missing install step, not a reason to skip."""
    for binary in binaries:
        if shutil.which(binary) is None:
            why = f"{binary} not installed (Debian package {PACKAGES.get(binary, binary)})"
            if os.environ.get("TEST_REQUIRE_ALL") == "1":
                pytest.fail(f"{why}: scripts/setup.sh --test should have installed it")
            pytest.skip(why)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


@contextmanager
def moving_content(path: Path, display: str) -> Iterator[ContentLog]:
    """The reference xterm tailing a ContentLog at ``path`` on ``display``, fed a line every
    0.1 s (moving content, what an encoder is measured on); stopped on exit."""
    log = ContentLog(path, 150)
    proc = subprocess.Popen(content_window_command(path, OverlayConfig()), env=dict(os.environ, DISPLAY=display),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stop = threading.Event()

    def feed() -> None:
        n = 0
        while not stop.wait(0.1):
            n += 1
            log.write(f"line {n}: the quick brown fox jumps over the lazy dog " * 2)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield log
    finally:
        stop.set()
        thread.join(2)
        stop_process(proc)


def start_xvfb(width: int = 1280, height: int = 720, attempts: int = 5,
               timeout: float = 10.0) -> tuple[str, subprocess.Popen[bytes], Path]:
    """Xvfb on a free display above 400 (the shared machine's other tests use lower ones)."""
    log_dir = Path(tempfile.mkdtemp(prefix="test-xvfb-"))
    last = ""
    for _ in range(attempts):
        number = random.randint(400, 999)
        if display_taken(number):
            continue
        log_path = log_dir / f"xvfb-{number}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", f"{width}x{height}x24",
                                     "-ac", "-nolisten", "tcp", "-noreset"],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        deadline = time.monotonic() + timeout
        socket_path = Path(f"/tmp/.X11-unix/X{number}")
        while time.monotonic() < deadline and proc.poll() is None and not socket_path.exists():
            time.sleep(0.05)
        if proc.poll() is None and socket_path.exists():
            return f":{number}", proc, log_dir
        stop_process(proc)
        last = log_path.read_text(errors="replace")
        if "already active" not in last and "Server is already" not in last:
            break
    shutil.rmtree(log_dir, ignore_errors=True)
    raise RuntimeError(f"Xvfb did not start: {last.strip()[-2000:]}")


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """A private 1280x720x24 Xvfb display name such as ``:517``."""
    require("Xvfb")
    display, proc, log_dir = start_xvfb()
    try:
        yield display
        if proc.poll() is not None:
            raise RuntimeError(f"Xvfb {display} died during the tests: "
                               f"{(log_dir / f'xvfb-{display[1:]}.log').read_text(errors='replace')}")
    finally:
        stop_process(proc)
        shutil.rmtree(log_dir, ignore_errors=True)


def start_pulseaudio(runtime: Path, timeout: float = 10.0) -> tuple[str, subprocess.Popen[bytes]]:
    """A throwaway PulseAudio daemon (pulsectl's own test recipe) answering on a unix socket."""
    runtime.mkdir(parents=True, exist_ok=True)
    sock = runtime / "native"
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), PULSE_RUNTIME_PATH=str(runtime / "pulse"),
               PULSE_STATE_PATH=str(runtime / "state"), HOME=str(runtime))
    env.pop("PULSE_SERVER", None)
    log_path = runtime / "pulseaudio.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["pulseaudio", "--daemonize=no", "--fail", "-nC",
                                 "--exit-idle-time=-1", "--use-pid-file=no",
                                 "--disable-shm=yes", "--log-target=stderr"],
                                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(f"load-module module-native-protocol-unix socket={sock} auth-anonymous=1\n"
                     "load-module module-null-sink sink_name=stream rate=44100 channels=2\n"
                     "set-default-sink stream\n".encode())
    proc.stdin.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not sock.exists():
        time.sleep(0.05)
    # the socket comes first; the null sink is loaded by the next line PulseAudio reads
    while time.monotonic() < deadline and proc.poll() is None and not _has_sink(f"unix:{sock}", "stream"):
        time.sleep(0.1)
    if proc.poll() is not None or not _has_sink(f"unix:{sock}", "stream"):
        stop_process(proc)
        raise RuntimeError(f"pulseaudio did not start: {log_path.read_text(errors='replace')[-2000:]}")
    return f"unix:{sock}", proc


def _has_sink(server: str, name: str) -> bool:
    try:
        out = subprocess.run(["pactl", "--server", server, "list", "short", "sinks"], capture_output=True,
                             text=True, timeout=5, check=False).stdout
    except subprocess.TimeoutExpired:
        return False
    return any(line.split("\t")[1:2] == [name] for line in out.splitlines())


@pytest.fixture(scope="session")
def pulse_server() -> Iterator[str]:
    """A private PulseAudio with a null sink ``stream``; ``PULSE_SERVER`` is exported meanwhile."""
    require("pulseaudio")
    runtime = Path(tempfile.mkdtemp(prefix="test-pulse-"))
    server, proc = start_pulseaudio(runtime)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PULSE_SERVER", server)
        try:
            yield server
        finally:
            stop_process(proc)
            shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture()
def flv_target(tmp_path: Path) -> Path:
    """A file the encoder writes FLV to instead of an RTMP ingest."""
    return tmp_path / "out.flv"
