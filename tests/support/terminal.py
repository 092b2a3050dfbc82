"""The on-screen terminal as the tree runs it, without a display: scripts/start-shell.sh (the
shell's session, as the shell's user) and scripts/start-terminal.sh (the tmux of the panes, as
us), with the runtime folder made the way `appliance up` makes it. Used by
tests/integration/test_terminal.py and bench/shell.py."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from appliance.core.errors import MediaError
from appliance.core.files import RuntimeLayout, write_private
from appliance.core.users import DEFAULT_SHELL_USER
from appliance.media.terminal import Terminal
from appliance.up.privileges import TreeUsers, prepare_runtime
from tests.support.tree import REPO, wait_until

SECRET = "rtk_terminal_test_secret_0123456789"


class Session:
    """start-shell.sh (as the shell user) and start-terminal.sh (as us), the tree's way."""

    def __init__(self, base: Path, *, program: str = "/bin/bash", off: str = "") -> None:
        self.base = base
        self.runtime = RuntimeLayout(base / "run")
        self.runtime.root.mkdir(mode=0o700)
        self.log = base / "stream.log"
        self.log.write_text("12:00:00 first line of the content log\n")
        write_private(self.runtime.root / "secret-token", SECRET + "\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        self.env.update({
            "APPLIANCE_TERMINAL_SOCKET": str(self.runtime.terminal_socket), "APPLIANCE_CONTENT_LOG": str(self.log),
            "APPLIANCE_SHELL_SOCKET": str(self.runtime.shell_socket),
            "APPLIANCE_WORKSPACE": str(self.runtime.shell_workspace), "APPLIANCE_CONTENT_GEOMETRY": "100x30+0+0",
            "APPLIANCE_TERMINAL_SHELL": program, "APPLIANCE_TERMINAL_LOG_PERCENT": "40", "APPLIANCE_WAIT_TIMEOUT": "10",
            "APPLIANCE_SHELL_RUN_AS": DEFAULT_SHELL_USER if not off else "root", "APPLIANCE_SHELL_OFF": off,
            "RETAKE_ACCESS_TOKEN": SECRET})  # this process's environment: the shell must not see it
        self.users = TreeUsers.from_tree({"APPLIANCE_RUN_AS": "root", **self.env})
        prepare_runtime(self.runtime.root, self.runtime.shell_dir, self.runtime.shell_workspace, self.users,
                        scripts=REPO / "scripts", programs=self.runtime.shell_programs)
        account = self.users.shell.account
        programs = self.runtime.shell_programs if account else REPO / "scripts"  # as ProcessTree.start chooses
        self.shell = subprocess.Popen([str(programs / "start-shell.sh")], env=self.env, start_new_session=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      **({"user": account.uid, "group": account.gid, "extra_groups": []}
                                         if account else {}))
        self.terminal = subprocess.Popen([str(REPO / "scripts/start-terminal.sh")], env=self.env,
                                         start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.restarts = 0
        self.term = Terminal(self.runtime.terminal_socket, off=off, restart_shell=self.restart_shell,
                             content_log=self.log)

    def restart_shell(self) -> None:
        self.restarts += 1

    def screen(self, lines: int = 40) -> str:
        try:
            return self.term.read(lines)
        except MediaError:
            assert self.terminal.poll() is None, self.terminal.stdout.read().decode()
            return ""

    def prompt(self) -> bool:
        return self.screen(5).rstrip().endswith("$")

    def run(self, command: str, marker: str, timeout: float = 8) -> list[str]:
        """Type ``command`` and wait for ``marker`` on its own line and a prompt after it."""
        self.term.send(command)
        def output() -> list[str] | None:
            lines = [line.strip() for line in self.screen(60).splitlines()]
            if marker in lines and lines[-1].endswith("$") and lines.index(marker) < len(lines) - 1:
                return lines
            return None
        return wait_until(output, timeout, f"the output of {command!r}")

    def close(self) -> None:
        for proc in (self.terminal, self.shell):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(10)
