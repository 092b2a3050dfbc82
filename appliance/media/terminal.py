"""The on-screen terminal: type into the shell pane of the content window's tmux session and
read what it shows (what viewers see in the content panel).

``scripts/start-terminal.sh`` runs the tmux server (supervisord's ``terminal`` program) with
one session, ``appliance``: pane 0 tails the content log, pane 1 is a shell run as the
appliance's unprivileged user with a clean environment in ``<state>/workspace``. This module
is the only way in: the console and the MCP tool ``terminal`` call :meth:`Terminal.send`
(a line of text, typed literally, then Enter), :meth:`Terminal.keys` (named keys from an
allow-list: Enter, C-c, Up, ...) and :meth:`Terminal.read` (the pane's text).

Who may call it is decided above this module: the operator (control token or console
session). The only :class:`Terminal` of a running controller lives in its control commands;
no chat brain is handed one, so viewers' chat can never type into the shell.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..core.errors import InputError, MediaError
from ..core.proc import Runner, run_tool

SESSION = "appliance"
LOG_PANE = f"{SESSION}:0.0"
SHELL_PANE = f"{SESSION}:0.1"
MAX_TEXT = 1000           # one command line
MAX_KEYS = 32             # keys in one call
MAX_LINES = 200           # lines read back (the pane's visible part plus scrollback)
TIMEOUT_S = 5.0
# keys the operator may press by name (tmux key names); anything else is typed as text
KEYS = frozenset({"Enter", "Tab", "BTab", "Escape", "BSpace", "DC", "Space", "Up", "Down", "Left",
                  "Right", "Home", "End", "PPage", "NPage", "C-a", "C-b", "C-c", "C-d", "C-e",
                  "C-k", "C-l", "C-r", "C-u", "C-w", "C-z", "q", "y", "n"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Terminal:
    """The tmux session at ``socket`` (``RuntimeLayout.terminal_socket``)."""

    def __init__(self, socket: Path, *, runner: Runner = subprocess.run, timeout_s: float = TIMEOUT_S) -> None:
        self.socket = Path(socket)
        self.runner = runner
        self.timeout_s = timeout_s

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Terminal | None:
        """The tree's terminal (``APPLIANCE_TERMINAL_SOCKET``), None outside `appliance up`."""
        path = environ.get("APPLIANCE_TERMINAL_SOCKET")
        return cls(Path(path)) if path else None

    def _tmux(self, *args: str) -> str:
        if not self.socket.exists():
            raise MediaError("the on-screen terminal is not running",
                             fix="it runs under `appliance up` (supervisord's terminal program)")
        out = run_tool(["tmux", "-u", "-S", str(self.socket), *args], timeout=self.timeout_s, what="tmux",
                       runner=self.runner)
        return out.decode("utf-8", "replace")

    def send(self, text: str, *, enter: bool = True) -> dict[str, object]:
        """Type ``text`` (one line, literally: no key names, no control characters) into the
        shell pane, then Enter unless ``enter`` is false."""
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise InputError(f"'text' must be a string of at most {MAX_TEXT} characters")
        if _CONTROL.search(text):
            raise InputError("'text' must be one line without control characters; use keys for Enter, C-c, ...")
        if text:
            self._tmux("send-keys", "-t", SHELL_PANE, "-l", "--", text)
        if enter:
            self._tmux("send-keys", "-t", SHELL_PANE, "Enter")
        return {"sent": len(text), "enter": enter}

    def keys(self, keys: Iterable[str]) -> dict[str, object]:
        """Press named keys (``KEYS``: Enter, C-c, Up, Tab, ...) in the shell pane, in order."""
        names = list(keys)
        if not names or len(names) > MAX_KEYS:
            raise InputError(f"'keys' must name 1 to {MAX_KEYS} keys")
        unknown = [k for k in names if k not in KEYS]
        if unknown:
            raise InputError(f"unknown key {unknown[0][:20]!r}; keys are: {', '.join(sorted(KEYS))}")
        self._tmux("send-keys", "-t", SHELL_PANE, *names)
        return {"pressed": names}

    def read(self, lines: int = 40, *, pane: str = "shell") -> str:
        """The last ``lines`` lines (at most ``MAX_LINES``) of the shell (or log) pane's text,
        trailing blank lines removed."""
        lines = max(1, min(int(lines), MAX_LINES))
        target = SHELL_PANE if pane == "shell" else LOG_PANE
        text = self._tmux("capture-pane", "-p", "-J", "-t", target, "-S", f"-{lines}")
        rows = text.rstrip("\n").split("\n")
        while rows and not rows[-1].strip():
            rows.pop()
        return "\n".join(rows[-lines:])
