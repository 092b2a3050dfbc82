"""Helpers and fixtures for the process-tree tests (import the fixtures into the test module).

Fixtures:
  * ``process_tree`` (module) — the whole tree under supervisord via :class:`ProcessTree`, with
    a stand-in controller, on a free display, 640x360, sink ``treetest`` at 48 kHz (:class:`TreeRun`).
  * ``docker_client`` (session) — a Docker SDK client from DOCKER_HOST (or the machine's podman
    socket); skips, saying why, when no engine answers.
  * ``appliance_image`` (session) — the image built from the repository (:class:`BuiltImage`:
    ``.image``, ``.seconds``, ``.size_mb``).
Helpers: ``free_display()``, ``write_config(...)``, ``short_tmpdir(prefix)``, ``wait_until(...)``,
``pid_alive(pid, started=None)``, ``start_time(pid)``, ``descendants(pid)``,
``process_name(pid)``, ``process_environ(pid)``, ``wait_all_ended(recorded, what)``,
``start_up_process(config, runtime, controller, log)`` (`appliance up` as a real process),
``terminate(popen)``, ``standin_ffmpeg_controller(target, w, h)``, ``STANDIN_CONTROLLER``.

Everything runs on a free X display (never :99) in private runtime dirs, so it can run beside
other Xvfb/PulseAudio tests on the same machine.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.media.display import free_display as first_free_display
from appliance.media.display import release_display
from appliance.up.tree import ProcessTree, tree_environment

REPO = Path(__file__).resolve().parents[2]
# A stand-in controller: stays alive until SIGTERM, then exits 0 (like `appliance live`).
STANDIN_CONTROLLER = [sys.executable, "-c",
                      "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
                      "print('stand-in controller up', flush=True); time.sleep(3600)"]


FAKE_TOKEN = "tree-test-token-not-a-secret"


def free_display() -> str:
    """':N' for a display nobody uses, picked at random in 200..899 (not :99). The reservation
    is handed over (released): the tests give the number to a child (`appliance up` pinned to
    it reserves it itself, and refuses a number another process holds)."""
    display = first_free_display(random.sample(range(200, 900), 700))
    release_display(display)
    return display


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
    """A temp dir with a short path (unix socket paths are limited to 107 bytes), mode 0711:
    nobody may list it, the shell user may pass through to its own folder (beside the tree's
    runtime folder: appliance/up/privileges.py); what is inside keeps its own modes."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o711)
    return folder


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "(gone)"


def process_environ(pid: int) -> bytes:
    """/proc/<pid>/environ as NUL-separated bytes; empty once the process has ended."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def wait_all_ended(recorded: dict[int, int | None], what: str, timeout: float = 5.0) -> None:
    """Every pid in ``recorded`` (pid -> start_time) ends within ``timeout``: grandchildren get
    their SIGHUP a moment after the parent returns. A reused pid does not count."""
    def alive() -> list[int]:
        return [pid for pid, started in recorded.items() if started is not None and pid_alive(pid, started)]
    try:
        wait_until(lambda: not alive(), timeout, "every process to end")
    except AssertionError:
        raise AssertionError(f"{what}: {alive()}") from None


def pid_alive(pid: int, started: int | None = None) -> bool:
    """True while /proc/<pid> exists and is not a zombie (and, given ``started``, is still
    the process that started then, not a later one with the same pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    return started is None or int(fields[19]) == started


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

    def x_env(self) -> dict[str, str]:
        """An environment for an X client of the tree's display: it needs the tree's cookie."""
        return dict(os.environ, DISPLAY=self.display, XAUTHORITY=self.env["XAUTHORITY"])

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
    env["RETAKE_ACCESS_TOKEN"] = FAKE_TOKEN
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
    """`appliance up` as a real separate process (python -m appliance.up), with a
    known runtime dir so the test can reach its supervisord."""
    env = dict(os.environ, APPLIANCE_RUNTIME_DIR=str(runtime), APPLIANCE_WAIT_TIMEOUT="20")
    with open(log, "ab") as output:
        return subprocess.Popen([sys.executable, "-m", "appliance.up", "--config", str(config),
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


# -- container -------------------------------------------------------------------------------

# one tag per checkout, so test runs of two clones on one engine never build over each other
IMAGE_TAG = "retake-appliance:test-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
def docker_client_or_skip():  # -> docker.DockerClient
    """A Docker-compatible engine from DOCKER_HOST (or the machine's podman socket), or skip."""
    pytest.importorskip("docker")
    from appliance.core.errors import ApplianceError
    from appliance.fleet.cli import docker_client
    try:
        return docker_client(timeout=1800)
    except ApplianceError as exc:
        pytest.skip(f"{exc}; run `source <(bash shared/tools/container-engine.sh)` or start Docker")


@pytest.fixture(scope="session")
def docker_client():
    client = docker_client_or_skip()
    yield client
    client.close()


class BuiltImage:
    def __init__(self, image, seconds: float) -> None:  # image: docker.models.images.Image
        self.image = image
        self.seconds = seconds
        self.size_mb = image.attrs.get("Size", 0) / 1e6


@pytest.fixture(scope="session")
def appliance_image(docker_client) -> BuiltImage:
    """The image built from the repository (layer cache makes a rebuild after a code change
    fast); its build time and size are printed in the test report."""
    import docker
    started = time.monotonic()
    try:
        image, _ = docker_client.images.build(path=str(REPO), tag=IMAGE_TAG, rm=True, forcerm=True)
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)[-3000:]
        raise AssertionError(f"image build failed: {exc}\n{tail}") from None
    built = BuiltImage(image, time.monotonic() - started)
    print(f"\nimage {IMAGE_TAG}: {built.size_mb:.0f} MB, built in {built.seconds:.0f} s", file=sys.stderr)
    return built


def standin_ffmpeg_controller(rtmp_target: str, width: int, height: int) -> list[str]:
    """A stand-in controller that pushes the display and the sink's monitor to ``rtmp_target``
    with the reference's encoder settings (until the real `appliance live` is wired in)."""
    script = ("exec ffmpeg -hide_banner -loglevel warning -nostdin -thread_queue_size 512 "
              f"-f x11grab -video_size {width}x{height} -framerate 30 -i \"$DISPLAY\" "
              "-thread_queue_size 512 -f pulse -i \"$APPLIANCE_SINK.monitor\" "
              "-c:v libx264 -preset veryfast -tune zerolatency -b:v 1500k -maxrate 1500k -bufsize 3000k "
              "-pix_fmt yuv420p -g 60 -c:a aac -b:a 128k -ar \"$APPLIANCE_SAMPLE_RATE\" "
              f"-f flv {rtmp_target}")
    return ["sh", "-c", script]
