"""The on-screen terminal: scripts/start-terminal.sh's tmux session (run here as it runs under
supervisord, without a display: the server needs none) driven by appliance/media/terminal.py."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from appliance.core.errors import InputError, MediaError
from appliance.media.terminal import Terminal
from tests.support.tree import REPO, short_tmpdir, wait_until


@pytest.fixture
def terminal(tmp_path):
    runtime = short_tmpdir("term-")
    log = tmp_path / "stream.log"
    log.write_text("12:00:00 first line of the content log\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env.update({"APPLIANCE_TERMINAL_SOCKET": str(runtime / "terminal.sock"), "APPLIANCE_CONTENT_LOG": str(log),
                "APPLIANCE_WORKSPACE": str(tmp_path / "workspace"), "APPLIANCE_CONTENT_GEOMETRY": "100x30+0+0",
                "APPLIANCE_TERMINAL_SHELL": "/bin/bash", "APPLIANCE_TERMINAL_LOG_PERCENT": "40",
                "APPLIANCE_WAIT_TIMEOUT": "10", "APPLIANCE_SECRET_PROBE": "must-not-leak",
                "RETAKE_ACCESS_TOKEN": "tok-must-not-leak"})
    proc = subprocess.Popen([str(REPO / "scripts/start-terminal.sh")], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    term = Terminal(runtime / "terminal.sock")
    def prompt() -> bool:
        try:
            return term.read(5).rstrip().endswith(("$", "#"))
        except MediaError:
            assert proc.poll() is None, proc.stdout.read().decode()
            return False
    try:
        wait_until(prompt, 10, "the shell's prompt")
        yield term, log, tmp_path, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_typed_command_runs_in_the_shell_pane_as_this_user_with_a_clean_environment(terminal):
    term, log, tmp_path, _ = terminal
    term.send("echo answer-$((6*7)); id -u; env | grep -c -E 'APPLIANCE|RETAKE|XAUTH|PULSE' ; pwd")
    def output() -> list[str] | None:
        lines = [line.strip() for line in term.read(20).splitlines()]
        return lines if "answer-42" in lines and lines[-1].endswith(("$", "#")) else None
    lines = wait_until(output, 5, "the command's output")
    at = lines.index("answer-42")
    assert lines[at + 1] == str(os.getuid())
    assert lines[at + 2] == "0", "the shell inherited appliance variables"
    assert lines[at + 3] == str(tmp_path / "workspace")
    # the log stays one pane, following the content log
    with log.open("a") as fh:
        fh.write("12:00:01 a new log line\n")
    wait_until(lambda: "a new log line" in term.read(10, pane="log"), 5, "the log pane")
    assert "first line of the content log" in term.read(10, pane="log")


def test_keys_interrupt_and_the_shell_comes_back_after_exit(terminal):
    term, *_ = terminal
    term.send("sleep 30")
    term.keys(["C-c"])
    term.send("echo after-interrupt")
    wait_until(lambda: term.read(5).rstrip().endswith(("$", "#")) and "after-interrupt\n" in term.read(10) + "\n", 5,
               "the interrupted shell to answer")
    term.send("exit")
    term.send("echo respawned-$((1+1))")
    wait_until(lambda: "respawned-2" in term.read(30).replace("echo respawned-$((1+1))", ""), 10,
               "a new shell after exit")


def test_bad_input_is_refused_before_tmux(terminal):
    term, *_ = terminal
    with pytest.raises(InputError, match="control characters"):
        term.send("echo hi\nrm -rf /")
    with pytest.raises(InputError, match="unknown key"):
        term.keys(["C-x"])
    with pytest.raises(InputError):
        term.send("x" * 2000)
    with pytest.raises(MediaError, match="not running"):
        Terminal(Path("/nonexistent/terminal.sock")).read()
