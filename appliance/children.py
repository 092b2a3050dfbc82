"""Child processes: every process the appliance starts dies with it.

Each child gets a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``): when its parent
ends for any reason — a clean exit, a crash, ``kill -9``, supervisord's SIGKILL after its stop
grace — the kernel sends the child SIGTERM, so no FFmpeg keeps streaming to a key nobody
controls and no tool outlives the controller. A child whose parent already died between
``fork`` and ``prctl`` terminates itself at once.

The signal follows the *thread* that forked: long-lived children (the encoder, nginx,
supervisord) must be started from a thread that lives as long as they should.

:func:`popen` and :func:`run` are ``subprocess.Popen`` / ``subprocess.run`` with the
parent-death signal; :func:`parent_death_preexec` is the ``preexec_fn`` itself, for code that
takes an injected runner (``media.tools.run_tool``, the encoder).

This module imports only the standard library, so every layer (the sandbox included) may use it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, Callable

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


def popen(cmd: list[str], **kwargs: Any) -> "subprocess.Popen[Any]":
    """``subprocess.Popen`` whose child dies with us."""
    return subprocess.Popen(cmd, **_with_preexec(kwargs))


def run(cmd: list[str], **kwargs: Any) -> "subprocess.CompletedProcess[Any]":
    """``subprocess.run`` whose child dies with us (a timeout kills it, as ``run`` does)."""
    return subprocess.run(cmd, **_with_preexec(kwargs))
