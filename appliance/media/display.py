"""The X display: wait until it answers, and take screenshots of it (for thumbnails).

Screenshots use scrot, or FFmpeg's x11grab when scrot is missing; the result is checked to
be a PNG that decodes (its IHDR gives the size) before anyone uploads it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..core.errors import MediaError
from ..core.images import ImageError, check_jpeg, check_png
from ..core.proc import run_capture, run_tool

log = logging.getLogger("appliance.display")

CAPTURE_TIMEOUT_S = 15.0
# X's own fixed names in the shared /tmp (not temporary files of ours): display N's socket and lock
X_SOCKET = "/tmp/.X11-unix/X{}"  # noqa: S108
X_LOCK = "/tmp/.X{}-lock"  # noqa: S108


def display_number(display: str) -> int:
    """``":99"`` or ``":99.0"`` -> 99."""
    try:
        return int(display.rsplit(":", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        raise MediaError(f"not an X display name: {display!r}", fix="use the form :99") from None


def display_taken(number: int) -> bool:
    """A display number is taken when its lock or socket file exists, or its abstract socket is
    bound in this network namespace by someone else (another X server, or another appliance's
    placeholder: this process's own reservation does not count)."""
    return _files_exist(number) or (number not in _RESERVED and _abstract_bound(number))


def _files_exist(number: int) -> bool:
    return Path(X_LOCK.format(number)).exists() or Path(X_SOCKET.format(number)).exists()


def _abstract_bound(number: int, table: str = "/proc/net/unix") -> bool:
    """True when ``@/tmp/.X11-unix/X<number>`` is bound in this network namespace (the kernel's
    table of unix sockets lists abstract names with a leading ``@``)."""
    name = "@" + X_SOCKET.format(number)
    try:
        with open(table, encoding="utf-8", errors="replace") as rows:
            return any(row.split()[-1:] == [name] for row in rows)
    except OSError:
        return False


# Display numbers reserved by this process, held until the process exits (the kernel drops both
# holds then, so no reservation is ever stale). `appliance up` (up/place.py), `appliance rehearse`
# and the tests all reserve here, so they never take one number twice. Each reservation is
#  - an flock'ed file in /tmp: processes that share /tmp (one host, one container);
#  - a placeholder on X's abstract socket name, bound and never listening: processes that share a
#    network namespace but not /tmp (containers on the host's network, a fleet on a local sandbox).
#    The tree's Xvfb listens on its socket file only (-nolisten local, scripts/start-xvfb.sh); an X
#    client tries the abstract name first, is refused by the placeholder (ECONNREFUSED) and falls
#    back to the file, so no other X server that binds that name later can take our clients (and
#    show them another screen, or refuse their cookie), and no other appliance can pick the number.
_RESERVED: dict[int, tuple[int, socket.socket]] = {}
RESERVATION = "/tmp/.appliance-X{}.lock"  # noqa: S108 (opened O_NOFOLLOW, flock'ed: see below)


def reserve_display(number: int) -> bool:
    """Hold display ``number`` for this process (True also when it holds it already); False
    when another process does.

    Checking that a display is free and starting Xvfb on it are two steps; two processes
    (two rehearsals, two test runs, two `appliance up`, two containers on one network) that check
    at the same moment both see it free, and the second Xvfb then fails ("Server is already
    active") while its tree draws on the first one's screen. Whoever holds the flock and the
    abstract placeholder owns the number until it exits."""
    if number in _RESERVED:
        return True
    try:
        fd = os.open(RESERVATION.format(number), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return False  # another user's reservation (sticky /tmp) or a symlink: not ours to take
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    placeholder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # close-on-exec: children never hold it
    try:
        placeholder.bind("\0" + X_SOCKET.format(number))
    except OSError:  # EADDRINUSE: an X server or another appliance on this network namespace has it
        placeholder.close()
        os.close(fd)
        return False
    _RESERVED[number] = (fd, placeholder)
    return True


def free_display(candidates: Iterable[int] = range(90, 190)) -> str:
    """':N' for the first display number among ``candidates`` that nobody uses, reserved for this
    process (:func:`reserve_display`): every call gives another number, in this process and
    across processes."""
    for number in candidates:
        if number in _RESERVED or display_taken(number) or not reserve_display(number):
            continue
        if _files_exist(number):  # an Xvfb started outside any reservation (by hand, another tool)
            release_display(f":{number}")
            continue
        return f":{number}"
    raise MediaError("no free X display number", fix="stop stale Xvfb servers or remove their /tmp/.X*-lock")


def release_display(display: str) -> None:
    """Give back a number :func:`free_display` handed out (its Xvfb has stopped)."""
    held = _RESERVED.pop(display_number(display), None)
    if held is not None:
        fd, placeholder = held
        placeholder.close()
        os.close(fd)


def _socket_answers(display: str) -> bool:
    path = X_SOCKET.format(display_number(display))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(path)
            return True
        except OSError:
            return False


def display_answers(display: str) -> bool:
    """One check: xdpyinfo when installed (a full X handshake), else the X socket accepts."""
    if shutil.which("xdpyinfo"):
        try:
            return run_capture(["xdpyinfo", "-display", display], timeout=5).returncode == 0
        except MediaError:
            return False
    return _socket_answers(display)


def wait_for_display(display: str, timeout: float, *, interval: float = 0.1,
                     clock: Callable[[], float] = time.monotonic) -> None:
    """Return once ``display`` answers; MediaError after ``timeout`` seconds."""
    deadline = clock() + timeout
    while True:
        if display_answers(display):
            return
        if clock() >= deadline:
            raise MediaError(f"X display {display} does not answer after {timeout:.0f}s",
                             fix="is Xvfb running (appliance up starts it), and is XAUTHORITY its cookie?")
        time.sleep(interval)


def png_size(data: bytes) -> tuple[int, int]:
    """A screenshot's size, once it is decoded enough to trust (:func:`~appliance.core.images.check_png`)."""
    try:
        info = check_png(data)
    except ImageError as exc:
        raise MediaError(f"screenshot: {exc}") from None
    return info.width, info.height


def _run(cmd: list[str], display: str) -> None:
    run_tool(cmd, timeout=CAPTURE_TIMEOUT_S, extra_env={"DISPLAY": display},
             what=f"{cmd[0]} on {display}")


def _ffmpeg_grab(display: str, out: Path, max_width: int, *extra: str) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "x11grab",
            "-draw_mouse", "0", "-i", display, "-frames:v", "1",
            "-vf", f"scale='min(iw,{max_width})':-2", *extra, "-y", str(out)]


def capture_png(display: str, *, max_width: int = 1280) -> bytes:
    """A PNG screenshot of ``display``, at most ``max_width`` pixels wide."""
    with tempfile.TemporaryDirectory(prefix="appliance-shot-") as tmp:
        out = Path(tmp) / "shot.png"
        if shutil.which("scrot"):
            _run(["scrot", "--overwrite", str(out)], display)
        else:
            _run(_ffmpeg_grab(display, out, max_width), display)
        if not out.exists():
            raise MediaError(f"screenshot of {display} produced no file")
        data = out.read_bytes()
        if png_size(data)[0] > max_width:  # checked once, as it is uploaded
            scaled = Path(tmp) / "scaled.png"
            _run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(out),
                  "-vf", f"scale={max_width}:-2", "-y", str(scaled)], display)
            data = scaled.read_bytes()
            png_size(data)
        return data


def capture_jpeg(display: str, *, max_width: int = 1280, quality: int = 4) -> bytes:
    """A JPEG screenshot (FFmpeg's x11grab, ``-q:v`` 2-31, lower is better)."""
    with tempfile.TemporaryDirectory(prefix="appliance-shot-") as tmp:
        out = Path(tmp) / "shot.jpg"
        _run(_ffmpeg_grab(display, out, max_width, "-q:v", str(quality)), display)
        data = out.read_bytes() if out.exists() else b""
    try:
        check_jpeg(data)
    except ImageError as exc:
        raise MediaError(f"screenshot of {display}: {exc}") from None
    return data
