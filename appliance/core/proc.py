"""Child processes: the one place the appliance starts a program.

Every child dies with the appliance. Each gets a parent-death signal (Linux
``prctl(PR_SET_PDEATHSIG)``): when its parent ends for any reason — a clean exit, a crash,
``kill -9``, supervisord's SIGKILL after its stop grace — the kernel sends the child SIGTERM, so
no FFmpeg keeps streaming to a key nobody controls and no tool outlives the controller. A child
whose parent already died between ``fork`` and ``prctl`` terminates itself at once.

The signal follows the *thread* that forked: long-lived children (the encoder, nginx,
supervisord) must be started from a thread that lives as long as they should.

- :func:`popen` and :func:`run` are ``subprocess.Popen`` / ``subprocess.run`` with the
  parent-death signal; :func:`parent_death_preexec` is the ``preexec_fn`` itself.
- :func:`run_tool` runs a short-lived tool (espeak-ng, paplay, ffmpeg, scrot, a brain's
  program, ...): a timeout, no stdin (or exactly the bytes given as ``input``), never a shell,
  and a failure mapped to :class:`~appliance.core.errors.MediaError` carrying the tool's own
  last lines (cleaned, so a tool echoing viewer text cannot drive a terminal).
  :func:`run_capture` is the same without judging the exit status (``doctor`` reads it).

This module imports only the standard library and the rest of ``core``, so every layer (the
sandbox included) may use it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from .errors import MediaError
from .sanitize import clean_text

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any:
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux / no libc symbol: a no-op there
        return None


_PRCTL = _load_prctl()  # resolved in the parent: the forked child must not load or import anything


def parent_death_preexec(sig: int = signal.SIGTERM,
                         then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that gives the child ``sig`` when the calling thread's process ends.

    ``then`` runs after it in the child (an existing ``preexec_fn`` to keep)."""
    parent = os.getpid()

    def preexec() -> None:  # runs in the child, between fork and exec: no imports, no locks
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)
        if then is not None:
            then()

    return preexec


def _with_preexec(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs["preexec_fn"] = parent_death_preexec(then=kwargs.get("preexec_fn"))
    return kwargs


Popen = Callable[..., "subprocess.Popen[Any]"]  # what starts a child: :func:`popen`, or a test's fake


def popen(cmd: list[str], *, die_with_parent: bool = True, **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` whose child dies with us (``die_with_parent=False``: one that may
    outlive the thread that starts it, such as a supervisord started from a short-lived thread)."""
    return subprocess.Popen(cmd, **(_with_preexec(kwargs) if die_with_parent else kwargs))


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` whose child dies with us (a timeout kills it, as ``run`` does)."""
    return subprocess.run(cmd, **_with_preexec(kwargs))


Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


def run_capture(cmd: list[str], *, timeout: float, runner: Runner = subprocess.run,
                env: Mapping[str, str] | None = None, what: str | None = None,
                input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` and return what it did, whatever its exit status; MediaError naming ``what``
    (default: the tool) when it cannot start or does not finish within ``timeout``."""
    name = what or cmd[0]
    try:
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        return runner(cmd, **stdin, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, timeout=timeout, check=False,
                      preexec_fn=parent_death_preexec(),
                      **({"env": dict(env)} if env is not None else {}))
    except subprocess.TimeoutExpired:
        raise MediaError(f"{name} did not finish within {timeout:.0f}s") from None
    except FileNotFoundError:
        raise MediaError(f"{cmd[0]} is not installed") from None
    except OSError as exc:
        raise MediaError(f"cannot run {cmd[0]}: {exc.strerror}") from None


def run_tool(cmd: list[str], *, timeout: float, runner: Runner = subprocess.run,
             env: Mapping[str, str] | None = None, what: str | None = None,
             input: bytes | None = None) -> bytes:
    """Run ``cmd``; its stdout, or MediaError naming ``what`` (default: the tool) and why."""
    result = run_capture(cmd, timeout=timeout, runner=runner, env=env, what=what, input=input)
    if result.returncode != 0:
        text = (result.stderr or result.stdout or b"").decode("utf-8", "replace").strip()
        tail = " | ".join(clean_text(line, 200) for line in text.splitlines()[-3:]) \
            or f"exit code {result.returncode}"
        raise MediaError(f"{what or cmd[0]} failed: {tail}")
    return result.stdout or b""
