"""The on-screen terminal: scripts/start-terminal.sh's tmux (the appliance's user, here root) and
scripts/start-shell.sh's session (the shell user), run as supervisord runs them, without a
display, driven by appliance/media/terminal.py.

What must hold: the shell runs as the second user with a clean environment in its own
workspace; it cannot read the runtime folder, a secret file or the controller's environment;
`exit` brings a new shell; a shell that cannot start backs off instead of spinning; where no
second user can be had the pane says why and typing is refused; a secret on a pane is cleared.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.core.errors import InputError, MediaError
from appliance.core.users import DEFAULT_SHELL_USER, lookup
from appliance.media.terminal import PaneGuard, Terminal
from tests.support.terminal import SECRET, Session
from tests.support.tree import short_tmpdir, wait_until

SHELL_USER = lookup(DEFAULT_SHELL_USER)
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or SHELL_USER is None,
                                reason=f"needs root and the {DEFAULT_SHELL_USER} user (scripts/setup.sh creates it)")


@pytest.fixture
def session() -> Iterator[Session]:
    base = short_tmpdir("term-")
    s = Session(base)
    try:
        wait_until(s.prompt, 15, "the shell's prompt")
        yield s
    finally:
        s.close()


def test_the_shell_runs_as_the_second_user_with_a_clean_environment_in_its_workspace(session: Session) -> None:
    lines = session.run("echo answer-$((6*7)); id -u; env | grep -c -E 'APPLIANCE|RETAKE|XAUTH|PULSE|DISPLAY'; pwd",
                        "answer-42")
    at = lines.index("answer-42")
    assert lines[at + 1] == str(SHELL_USER.uid)
    assert lines[at + 2] == "0", "the shell inherited appliance variables"
    assert lines[at + 3] == str(session.runtime.shell_workspace)
    # the log stays one pane, following the content log
    with session.log.open("a") as fh:
        fh.write("12:00:01 a new log line\n")
    wait_until(lambda: "a new log line" in session.term.read(10, pane="log"), 5, "the log pane")
    assert "first line of the content log" in session.term.read(10, pane="log")


def test_the_shell_cannot_read_a_secret_nor_our_environment(session: Session) -> None:
    """The attacker's commands of issue 17, typed through Terminal.send (what the console and
    MCP do): every one fails, and no secret reaches the pane."""
    commands = [f"cat {session.runtime.root}/secret-token; echo done-1",
                f"ls {session.runtime.root}; echo done-2",
                f"tr '\\0' '\\n' </proc/{os.getpid()}/environ | grep RETAKE; echo done-3",
                f"tr '\\0' '\\n' </proc/{session.terminal.pid}/environ | grep RETAKE; echo done-4"]
    for number, command in enumerate(commands, 1):
        session.run(command, f"done-{number}")
    screen = session.screen(200)
    assert screen.count("Permission denied") >= 4, screen
    assert SECRET not in screen


def test_keys_interrupt_and_a_new_shell_comes_after_exit(session: Session) -> None:
    session.term.send("sleep 30")
    session.term.keys(["C-c"])
    session.run("echo after-interrupt", "after-interrupt")
    session.term.send("exit")
    wait_until(lambda: "[the shell ended" in session.screen(20), 10, "the loop's line about a new shell")
    session.run("echo respawned-$((1+1))", "respawned-2", timeout=10)


def test_bad_input_is_refused_before_tmux(session: Session) -> None:
    with pytest.raises(InputError, match="control characters"):
        session.term.send("echo hi\nrm -rf /")
    with pytest.raises(InputError, match="unknown key"):
        session.term.keys(["C-x"])
    with pytest.raises(InputError):
        session.term.send("x" * 2000)
    with pytest.raises(MediaError, match="not running"):
        Terminal(Path("/nonexistent/terminal.sock")).read()


def test_a_secret_on_a_pane_is_cleared_with_its_history_and_the_operator_told(session: Session) -> None:
    leaks: list[str] = []
    guard = PaneGuard(session.term, contains_secret=lambda text: SECRET in text, on_leak=leaks.append)
    session.run(f"echo {SECRET[:10]}''{SECRET[10:]}; echo printed", "printed")  # typed in two halves
    assert SECRET in session.screen(60)
    assert guard.read(60) == PaneGuard.NOTE and leaks == ["shell"] and session.restarts == 1
    wait_until(lambda: SECRET not in session.term.read(200) and "printed" not in session.term.read(200), 5,
               "the pane and its history cleared")
    guard.sweep()
    assert leaks == ["shell"]  # nothing left to find
    with session.log.open("a") as fh:
        fh.write(f"12:00:02 {SECRET}\n")
    wait_until(lambda: SECRET in session.term.read(10, pane="log"), 5, "the leak in the log pane")
    guard.sweep()
    assert leaks == ["shell", "log"]
    wait_until(lambda: SECRET not in session.term.read(200, pane="log"), 5, "the log pane cleared")
    with session.log.open("a") as fh:
        fh.write("12:00:03 the log goes on\n")
    wait_until(lambda: "the log goes on" in session.term.read(10, pane="log"), 5, "the log pane following again")


def test_a_shell_that_cannot_start_backs_off_and_says_why() -> None:
    """Issue 17.2: in the image a nologin shell made the panes die and respawn 82 times in 3 s.
    Here a shell that ends at once is started at most a handful of times in 12 s, and the pane
    says what is wrong; the shell pane itself never dies."""
    base = short_tmpdir("term-")
    s = Session(base, program="/usr/sbin/nologin")
    try:
        wait_until(lambda: "keeps ending at once" in s.screen(40), 15, "the reason on the pane")
        time.sleep(8)
        screen = s.screen(200)
        starts = screen.count("This account is currently not available")
        assert 2 <= starts <= 6, screen
        assert "is terminal.shell a shell?" in screen
        dead = subprocess.run(["tmux", "-S", str(s.runtime.terminal_socket), "list-panes", "-a", "-F",
                               "#{pane_dead}"], capture_output=True, text=True).stdout.split()
        assert dead == ["0", "0"]
    finally:
        s.close()


def test_without_a_second_user_the_shell_is_off_and_says_why() -> None:
    base = short_tmpdir("term-")
    s = Session(base, off="the appliance runs as someone (uid 1000), not root")
    try:
        wait_until(lambda: "on-screen shell off: the appliance runs as someone" in s.screen(10), 10, "the reason")
        with pytest.raises(MediaError, match="the on-screen shell is off"):
            s.term.send("id")
        with pytest.raises(MediaError, match="the on-screen shell is off"):
            s.term.keys(["C-c"])
    finally:
        s.close()
