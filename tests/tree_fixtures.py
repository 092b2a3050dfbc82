"""Helpers and fixtures for the process-tree tests (imported by tests/test_process_tree.py).

Everything runs on a free X display (never :99), in private runtime dirs, on free ports, so
it can run beside other Xvfb/PulseAudio tests on the same machine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from appliance.config import load_config
from appliance.supervisor import ProcessTree, tree_environment

REPO = Path(__file__).resolve().parent.parent
# A stand-in controller: stays alive until SIGTERM, then exits 0 (like `appliance live`).
STANDIN_CONTROLLER = [sys.executable, "-c",
                      "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
                      "print('stand-in controller up', flush=True); time.sleep(3600)"]


def display_taken(number: int) -> bool:
    """A display is taken when its lock or socket exists, or its abstract socket answers."""
    if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
        return True
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(f"\0/tmp/.X11-unix/X{number}")
        return True
    except OSError:
        return False
    finally:
        probe.close()


def free_display() -> str:
    """':N' for a display nobody uses, picked at random in 200..899 (not :99)."""
    for number in random.sample(range(200, 900), 700):
        if not display_taken(number):
            return f":{number}"
    raise RuntimeError("no free X display number")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, *, display: str, state_dir: Path, width: int = 640, height: int = 360,
                 sample_rate: int = 48000, sink: str = "treetest", extra: str = "") -> Path:
    """A minimal valid appliance.yaml for the tree (agent profile is a placeholder)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "appliance.yaml"
    path.write_text(f"""\
agent:
  name: TreeTest
  description: "process tree test"
  image_url: https://example.com/avatar.png
  wallet_address: "11111111111111111111111111111111"
  ticker: TREE
paths:
  state_dir: {state_dir}
stream:
  display: "{display}"
  width: {width}
  height: {height}
  sample_rate: {sample_rate}
  sink: {sink}
{extra}""", encoding="utf-8")
    return path


def short_tmpdir(prefix: str) -> Path:
    """A private temp dir with a short path (unix socket paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while /proc/<pid> exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc/<pid>/task/*/children."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


class TreeRun:
    """A running ProcessTree plus what the tests need to look at it."""

    def __init__(self, tree: ProcessTree, config: Path, log: Path) -> None:
        self.tree = tree
        self.config = config
        self.log = log
        self.env = tree.env
        self.settings = load_config(config)

    @property
    def pulse_socket(self) -> str:
        return self.env["APPLIANCE_PULSE_SOCKET"]

    @property
    def display(self) -> str:
        return self.env["APPLIANCE_DISPLAY"]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="module")
def process_tree() -> Iterator[TreeRun]:
    """The appliance's whole process tree under supervisord, with a stand-in controller, on a
    free display at 640x360 and a 48 kHz sink; stopped (every program) afterwards."""
    base = short_tmpdir("aptree-")
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    config = write_config(base / "config", display=free_display(), state_dir=base / "state")
    env = tree_environment(config, load_config(config), runtime_dir=runtime, controller=STANDIN_CONTROLLER)
    env["APPLIANCE_WAIT_TIMEOUT"] = "20"
    log = base / "tree.log"
    with open(log, "ab") as output:
        tree = ProcessTree(env, output=output)
        tree.start()
    run = TreeRun(tree, config, log)
    try:
        try:
            tree.wait_running(timeout=30)
        except Exception as exc:
            raise AssertionError(f"{exc}\n--- tree log ---\n{run.log_tail()}") from None
        yield run
    finally:
        tree.stop(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def start_up_process(config: Path, runtime: Path, controller: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`appliance up` as a real separate process (python -m appliance.supervisor), with a
    known runtime dir so the test can reach its supervisord."""
    env = dict(os.environ, APPLIANCE_RUNTIME_DIR=str(runtime), APPLIANCE_WAIT_TIMEOUT="20")
    with open(log, "ab") as output:
        return subprocess.Popen([sys.executable, "-m", "appliance.supervisor", "--config", str(config),
                                 "--", *controller], env=env, cwd=REPO, stdout=output,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def terminate(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM one process by pid and wait; SIGKILL if it does not end."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(5)
