"""Child processes: the one place the appliance starts a program.

Every child dies with the appliance. Each gets a parent-death signal (Linux
``prctl(PR_SET_PDEATHSIG)``): when its parent ends for any reason — a clean exit, a crash,
``kill -9``, supervisord's SIGKILL after its stop grace — the kernel sends the child SIGTERM, so
no FFmpeg keeps streaming to a key nobody controls and no tool outlives the controller. A child
whose parent already died between ``fork`` and ``prctl`` terminates itself at once.

The signal follows the *thread* that forked: long-lived children (the encoder, nginx,
supervisord) must be started from a thread that lives as long as they should.

Every child gets the one allow-listed environment, :func:`child_environment`: the variables a
program needs to find its tools, its display, its sound server, its locale and its CA bundle, and
the tree's ``APPLIANCE_*`` settings (which never hold a secret) — nothing else. A secret (the
access token, an API key, a webhook header, a stream key) is never an environment variable of a
child: the controller reads secrets once from files (:mod:`appliance.core.secrets`). An ``env``
given by a caller is filtered the same way (it can only take away, never add a secret).

- :func:`popen` and :func:`run` are ``subprocess.Popen`` / ``subprocess.run`` with the
  parent-death signal and the child environment; :func:`parent_death_preexec` is the
  ``preexec_fn`` itself.
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
from urllib.parse import urlsplit

from .errors import MediaError
from .sanitize import clean_text

_PR_SET_PDEATHSIG = 1

# What a child may inherit (see child_environment). Names, not values: a value is never looked at
# except a proxy's, which is dropped when it carries a user name or password.
CHILD_VARIABLES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
    "DISPLAY", "XAUTHORITY", "PULSE_SERVER", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME",
    "VIRTUAL_ENV", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
})
CHILD_PREFIXES = ("APPLIANCE_", "LC_", "SUPERVISOR_")  # the tree's settings, locale, supervisord's own
PROXY_VARIABLES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"})


def allowed_variable(name: str, value: str) -> bool:
    """Whether a child may inherit ``name=value`` (:data:`CHILD_VARIABLES`, :data:`CHILD_PREFIXES`,
    and a proxy without credentials in its URL)."""
    if name in CHILD_VARIABLES or name.startswith(CHILD_PREFIXES):
        return True
    if name in PROXY_VARIABLES:
        return "@" not in (urlsplit(value).netloc if "://" in value else value)
    return False


def child_environment(environ: Mapping[str, str] | None = None,
                      extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every child process gets: ``environ`` (default: ours) with ``extra`` set
    on top (``DISPLAY`` for one tool), both reduced to what a child may inherit
    (:func:`allowed_variable`). The one place a child's environment is made."""
    source = {**(os.environ if environ is None else environ), **(extra or {})}
    return {name: value for name, value in source.items() if allowed_variable(name, value)}


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


def _child(kwargs: dict[str, Any], *, die_with_parent: bool = True) -> dict[str, Any]:
    """``kwargs`` of a child: the child environment, and the parent-death signal unless told not to."""
    kwargs["env"] = child_environment(kwargs.get("env"))
    if die_with_parent:
        kwargs["preexec_fn"] = parent_death_preexec(then=kwargs.get("preexec_fn"))
    return kwargs


Popen = Callable[..., "subprocess.Popen[Any]"]  # what starts a child: :func:`popen` or a test's fake


def popen(cmd: list[str], *, die_with_parent: bool = True, **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` whose child gets :func:`child_environment` and dies with us
    (``die_with_parent=False``: one that may outlive the thread that starts it, such as a
    supervisord started from a short-lived thread)."""
    return subprocess.Popen(cmd, **_child(kwargs, die_with_parent=die_with_parent))


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` whose child dies with us (a timeout kills it, as ``run`` does) and gets
    :func:`child_environment`."""
    return subprocess.run(cmd, **_child(kwargs))


Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


def run_capture(cmd: list[str], *, timeout: float, runner: Runner = subprocess.run,
                env: Mapping[str, str] | None = None, extra_env: Mapping[str, str] | None = None,
                what: str | None = None, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` and return what it did, whatever its exit status; MediaError naming ``what``
    (default: the tool) when it cannot start or does not finish within ``timeout``. The child's
    environment: :func:`child_environment` of ``env`` (default: ours) and ``extra_env``."""
    name = what or cmd[0]
    try:
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        return runner(cmd, **stdin, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, timeout=timeout, check=False,
                      preexec_fn=parent_death_preexec(), env=child_environment(env, extra_env))
    except subprocess.TimeoutExpired:
        raise MediaError(f"{name} did not finish within {timeout:.0f}s") from None
    except FileNotFoundError:
        raise MediaError(f"{cmd[0]} is not installed") from None
    except OSError as exc:
        raise MediaError(f"cannot run {cmd[0]}: {exc.strerror}") from None


def run_tool(cmd: list[str], *, timeout: float, runner: Runner = subprocess.run,
             env: Mapping[str, str] | None = None, extra_env: Mapping[str, str] | None = None,
             what: str | None = None, input: bytes | None = None) -> bytes:
    """Run ``cmd``; its stdout, or MediaError naming ``what`` (default: the tool) and why."""
    result = run_capture(cmd, timeout=timeout, runner=runner, env=env, extra_env=extra_env, what=what,
                         input=input)
    if result.returncode != 0:
        text = (result.stderr or result.stdout or b"").decode("utf-8", "replace").strip()
        tail = " | ".join(clean_text(line, 200) for line in text.splitlines()[-3:]) \
            or f"exit code {result.returncode}"
        raise MediaError(f"{what or cmd[0]} failed: {tail}")
    return result.stdout or b""
