"""Running a media tool (espeak-ng, paplay, ffmpeg, scrot, ...): the one place a child tool is
started and its failure mapped to :class:`~appliance.errors.MediaError`.

Every run has a timeout, takes no stdin (or exactly the bytes given as ``input``), never goes
through a shell, dies with the appliance
(a parent-death signal, :mod:`appliance.children`), and a failure carries the tool's own last
lines (cleaned, so a tool echoing viewer text cannot drive a terminal). :func:`run_capture`
is the same without judging the exit status (``doctor`` reads it).
"""

from __future__ import annotations

import subprocess
from typing import Callable, Mapping

from ..children import parent_death_preexec
from ..errors import MediaError
from ..sanitize import clean_text

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


def run_capture(cmd: list[str], *, timeout: float, runner: Runner = subprocess.run,
                env: Mapping[str, str] | None = None, what: str | None = None,
                input: bytes | None = None) -> "subprocess.CompletedProcess[bytes]":
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
