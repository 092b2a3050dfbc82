"""The on-screen terminal: type into the shell pane of the content window's tmux session and
read what it shows (what viewers see in the content panel).

``scripts/start-terminal.sh`` runs the tmux server (supervisord's ``terminal`` program, as the
appliance's user) with one session, ``appliance``: pane 0 tails the content log, pane 1 shows
the shell. The shell itself runs as a *second user* that cannot read the state folder, the
runtime folder, the secrets or the controller's environment (supervisord's ``shell`` program,
``scripts/start-shell.sh``: a dtach session in the shell's own folder); the pane attaches to it
with dtach's client, which only copies bytes. Why not a tmux of the shell user's: a tmux client
obeys its server (``detach-client -E`` makes an attached client run a command; a server may ask
a client to read files), so no process of the appliance's user may ever connect to a tmux the
shell user controls. Where no second user can be had the shell is off, with the reason on the
pane (:func:`appliance.core.users.shell_access`), and :meth:`Terminal.send` refuses.

This module is the only way in: the console and the MCP tool ``terminal`` call
:meth:`Terminal.send` (a line of text, typed literally, then Enter), :meth:`Terminal.keys` (named
keys from an allow-list: Enter, C-c, Up, ...) and :meth:`Terminal.read` (the pane's text).
:class:`PaneGuard` checks what the panes show with the outgoing secret filter: a secret on a pane
clears it (screen and history) and tells the operator.

Who may call it is decided above this module: the operator (control token or console session).
The only :class:`Terminal` of a running controller lives in its control commands; no chat brain
is handed one, so viewers' chat can never type into the shell.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..core.errors import InputError, MediaError
from ..core.proc import Runner, run_tool

log = logging.getLogger("appliance.media.terminal")

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
    """The tmux session at ``socket`` (``RuntimeLayout.terminal_socket``); ``off``: why the
    shell is off (then typing is refused); ``content_log``: what the log pane follows."""

    def __init__(self, socket: Path, *, runner: Runner = subprocess.run, timeout_s: float = TIMEOUT_S,
                 off: str = "", restart_shell: Callable[[], None] = lambda: None,
                 content_log: Path | None = None) -> None:
        self.socket = Path(socket)
        self.content_log = content_log
        self.runner = runner
        self.timeout_s = timeout_s
        self.off = off
        self.restart_shell = restart_shell

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Terminal | None:
        """The tree's terminal (``APPLIANCE_TERMINAL_SOCKET``), None outside `appliance up`."""
        path = environ.get("APPLIANCE_TERMINAL_SOCKET")
        if not path:
            return None
        content = environ.get("APPLIANCE_CONTENT_LOG")
        return cls(Path(path), off=environ.get("APPLIANCE_SHELL_OFF", ""),
                   restart_shell=lambda: restart_program("shell", environ),
                   content_log=Path(content) if content else None)

    def _tmux(self, *args: str) -> str:
        if not self.socket.exists():
            raise MediaError("the on-screen terminal is not running",
                             fix="it runs under `appliance up` (supervisord's terminal program)")
        out = run_tool(["tmux", "-u", "-S", str(self.socket), *args], timeout=self.timeout_s, what="tmux",
                       runner=self.runner)
        return out.decode("utf-8", "replace")

    def _typing(self) -> None:
        if self.off:
            raise MediaError(f"the on-screen shell is off: {self.off}",
                             fix="run the appliance as root or in the image (docs/security.md)")

    def send(self, text: str, *, enter: bool = True) -> dict[str, object]:
        """Type ``text`` (one line, literally: no key names, no control characters) into the
        shell pane, then Enter unless ``enter`` is false."""
        self._typing()
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
        self._typing()
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

    def clear(self, pane: str = "shell") -> None:
        """Wipe a pane, screen and history: its program starts again (the log pane without the
        log's past lines; for the shell pane, the shell's session is restarted too, so what
        printed it is gone)."""
        target = SHELL_PANE if pane == "shell" else LOG_PANE
        if pane == "shell":
            self.restart_shell()
            self._tmux("respawn-pane", "-k", "-t", target)
        elif self.content_log is not None:  # following on from now: the log's past lines hold the leak
            self._tmux("respawn-pane", "-k", "-t", target, f"exec tail -n 0 -F {shlex.quote(str(self.content_log))}")
        else:
            self._tmux("respawn-pane", "-k", "-t", target)
        self._tmux("clear-history", "-t", target)


def restart_program(name: str, environ: Mapping[str, str] = os.environ) -> None:
    """Ask supervisord (the tree's XML-RPC socket, ``SUPERVISOR_SERVER_URL``) to restart a
    program; nothing when there is none (a controller outside `appliance up`)."""
    if not environ.get("SUPERVISOR_SERVER_URL"):
        return
    from supervisor import childutils
    rpc = childutils.getRPCInterface(dict(environ))
    steps: list[tuple[str, Callable[[], object]]] = [("stop", lambda: rpc.supervisor.stopProcess(name, True)),
                                                     ("start", lambda: rpc.supervisor.startProcess(name, False))]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # not running (stop), or a start that failed: said, not raised
            log.info("supervisord: %s %s: %s", what, name, exc)


class PaneGuard:
    """Defence in depth on the panes viewers watch: every ``interval_s`` (and on every
    :meth:`read`) the panes' text goes through ``contains_secret`` (the outgoing filter's); a
    hit clears that pane and its history (:meth:`Terminal.clear`) and calls ``on_leak`` (the
    operator's notification). It never says which secret."""

    PANES = ("shell", "log")
    NOTE = "[cleared: a secret was on this pane]"

    def __init__(self, terminal: Terminal, *, contains_secret: Callable[[str], bool],
                 on_leak: Callable[[str], None], interval_s: float = 3.0) -> None:
        self.terminal, self.contains_secret, self.on_leak = terminal, contains_secret, on_leak
        self.interval_s = interval_s
        self.cleared = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, pane: str, text: str) -> bool:
        """True (and the pane cleared, the operator told) when ``text`` holds a secret."""
        if not self.contains_secret(text):
            return False
        self.cleared += 1
        log.warning("a secret was on the terminal's %s pane: cleared it (screen and history)", pane)
        try:
            self.terminal.clear(pane)
        finally:
            self.on_leak(pane)
        return True

    def send(self, text: str, *, enter: bool = True) -> dict[str, object]:
        return self.terminal.send(text, enter=enter)

    def keys(self, keys: Iterable[str]) -> dict[str, object]:
        return self.terminal.keys(keys)

    def read(self, lines: int = 40, *, pane: str = "shell") -> str:
        """:meth:`Terminal.read`, checked first: a pane that showed a secret is read as cleared."""
        text = self.terminal.read(lines, pane=pane)
        return self.NOTE if self.check(pane, text) else text

    def sweep(self) -> None:
        for pane in self.PANES:
            try:
                self.check(pane, self.terminal.read(MAX_LINES, pane=pane))
            except MediaError:
                pass  # the terminal is (re)starting

    def start(self) -> PaneGuard:
        self._thread = threading.Thread(target=self._run, name="pane-guard", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sweep()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
