"""`appliance up`: the whole process tree under supervisord.

    appliance up --config FILE
      └─ supervisord -n -c $APPLIANCE_HOME/supervisord.conf   (a child, in its own session)
           ├─ on-controller-exit   event listener: the controller's exit ends the tree
           ├─ xvfb, pulseaudio, openbox, scene, terminal, content   helpers, restarted when they die
           └─ controller           `appliance live` (it starts and stops FFmpeg itself)

The same tree runs in the container (under tini) and on a bare Debian host. SIGTERM/SIGINT
to `appliance up` are forwarded to supervisord, which stops every program in the reverse
start order; `appliance up` waits for it and exits with the controller's exit status.

Settings reach the tree as APPLIANCE_* environment variables, computed here from the config
file: see :func:`tree_environment`, the one place they are all defined. :class:`ProcessTree`
starts the tree in the background for tests and `appliance rehearse` and exposes
supervisord's XML-RPC interface.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from supervisor.xmlrpc import SupervisorTransport

from ..config import Settings
from ..core.errors import ConfigError, MediaError
from ..core.files import (
    RuntimeLayout,
    ensure_private_dir,
    write_private,
    xauthority_entry,
)
from ..core.proc import allowed_variable, child_environment, popen
from ..core.secrets import ENV_STORE, Secret, collect, scrub_environment, write_store
from ..retake.credentials import ENV_TOKEN
from .privileges import TreeUsers, check_secret_files, give, prepare_runtime

log = logging.getLogger("appliance.up")

IMAGE_HOME = Path("/opt/appliance")
PROGRAMS = ("xvfb", "pulseaudio", "openbox", "scene", "shell", "terminal", "content", "controller")
HELPERS = ("xvfb", "pulseaudio", "openbox", "scene", "shell", "terminal", "content")
_SOCKET_MAX = 107  # sun_path is 108 bytes with its terminating NUL


def default_home() -> Path:
    """Where supervisord.conf, conf.d/ and scripts/ are: inside the installed package
    (``appliance/tree/``, copied there by setup.py when the wheel is built), else the checkout
    the package runs from (development, editable installs), else /opt/appliance (older images)."""
    package = Path(__file__).resolve().parent.parent  # appliance/
    for home in (package / "tree", package.parent):
        if (home / "supervisord.conf").is_file():
            return home
    return IMAGE_HOME


def appliance_home(environ: Mapping[str, str] = os.environ) -> Path:
    home = Path(environ.get("APPLIANCE_HOME") or default_home())
    if not (home / "supervisord.conf").is_file():
        raise ConfigError(f"{home}/supervisord.conf: not found",
                          fix="set APPLIANCE_HOME to the folder holding supervisord.conf, conf.d/ and scripts/")
    return home


def content_geometry(width: int, height: int, font_size: int) -> str:
    """xterm COLSxROWS+0+0 that fits the screen: the size it has before openbox maximizes it
    (scripts/openbox-rc.xml), and keeps if no window manager runs. The cell is DejaVu Sans Mono's
    at Xvfb's 100 dpi, measured: 12x23 px at size 12 (the reference's 160x45 would be 1924x1039)."""
    cell_w, cell_h = font_size, font_size * 23 / 12
    return f"{max(20, int(width / cell_w))}x{max(5, int(height / cell_h))}+0+0"


def make_runtime_dir(environ: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """The tree's private (mode 700) runtime dir, and whether we created it (then we remove it).

    APPLIANCE_RUNTIME_DIR in the environment names one to use (created if missing); otherwise
    a fresh one under the temp dir. Holds supervisord's socket and pid file, PulseAudio's socket,
    config and state, and the controller's exit status.
    """
    given = environ.get("APPLIANCE_RUNTIME_DIR")
    if given:
        return ensure_private_dir(Path(given)), False
    return Path(tempfile.mkdtemp(prefix="appliance-")), True


def workspace_of(settings: Settings, runtime: RuntimeLayout) -> Path:
    """The on-screen shell's working folder: ``terminal.workspace``, else one beside the runtime
    folder. ConfigError when it is inside the state folder (the shell user must not reach it)."""
    chosen = settings.terminal.workspace
    if chosen is None:
        return runtime.shell_workspace
    chosen = chosen.expanduser().resolve()
    if settings.layout.contains(chosen) or chosen == Path("/"):
        raise ConfigError(f"terminal.workspace: {chosen} is inside paths.state_dir (or the root): the shell "
                          "user must not reach the state", fix="choose a folder of its own, or remove the key")
    return chosen


def tree_environment(settings_path: Path, settings: Settings, *, runtime_dir: Path,
                     controller: list[str] | None = None,
                     environ: Mapping[str, str] = os.environ, users: TreeUsers | None = None) -> dict[str, str]:
    """The environment of supervisord and every program: the inherited one plus APPLIANCE_*.

    Every APPLIANCE_* variable the tree reads is set here, and only here (supervisord's
    ``%(ENV_X)s`` needs each one set; the scripts define no defaults). Values that exist in
    the config file come from it (its defaults are in appliance/config.py); the few that do
    not may be given in the environment of `appliance up`.
    """
    stream, overlay = settings.stream, settings.overlay
    runtime = RuntimeLayout(runtime_dir)
    users = users or TreeUsers.from_environment(environ)
    pulse_socket = runtime.pulse_socket
    if len(str(pulse_socket)) > _SOCKET_MAX:
        raise ConfigError(f"{pulse_socket}: too long for a unix socket path",
                          fix="set TMPDIR or APPLIANCE_RUNTIME_DIR to a shorter folder")
    state_dir = settings.state_dir
    if controller:
        controller_cmd = shlex.join(controller)
    else:
        controller_cmd = environ.get("APPLIANCE_CONTROLLER", "")
    tree = {
        # -- from the environment of `appliance up` (defaults here) ----------------------
        # folder with supervisord.conf, conf.d/, scripts/: the repo root, or /opt/appliance
        "APPLIANCE_HOME": str(appliance_home(environ)),
        # private mode-700 runtime dir: default a fresh one under $TMPDIR (see make_runtime_dir)
        "APPLIANCE_RUNTIME_DIR": str(runtime_dir),
        # a stand-in controller command (shell words); empty: `appliance live --config ...`
        "APPLIANCE_CONTROLLER": controller_cmd,
        # seconds a start script waits for the display / the sink before failing
        "APPLIANCE_WAIT_TIMEOUT": environ.get("APPLIANCE_WAIT_TIMEOUT", "30"),
        # the Python that runs the event listener (the one running `appliance up`)
        "APPLIANCE_PYTHON": sys.executable,
        # -- from the config file ---------------------------------------------------------
        "APPLIANCE_CONFIG": str(settings_path.resolve()),       # --config FILE
        "APPLIANCE_STATE_DIR": str(state_dir),                  # paths.state_dir
        "APPLIANCE_DISPLAY": stream.display,                    # stream.display  (:99)
        "APPLIANCE_WIDTH": str(stream.width),                   # stream.width    (1280)
        "APPLIANCE_HEIGHT": str(stream.height),                 # stream.height   (720)
        "APPLIANCE_SINK": stream.sink,                          # stream.sink     (stream)
        "APPLIANCE_SAMPLE_RATE": str(stream.sample_rate),       # stream.sample_rate (44100)
        "APPLIANCE_CONTENT_LOG": str(settings.content_log()),   # overlay.content_log
        "APPLIANCE_FONT_SIZE": str(overlay.font_size),          # overlay.font_size (12)
        "APPLIANCE_FOREGROUND": overlay.foreground,             # overlay.foreground (#00ff00)
        "APPLIANCE_BACKGROUND": overlay.background,             # overlay.background (#000000)
        # derived: xterm COLSxROWS that fits the screen (106x31+0+0 at 1280x720, size 12)
        "APPLIANCE_CONTENT_GEOMETRY": content_geometry(stream.width, stream.height, overlay.font_size),
        # derived: PulseAudio's native socket
        "APPLIANCE_PULSE_SOCKET": str(pulse_socket),
        # derived: where the scene renderer listens for the controller (appliance/scene/link.py)
        "APPLIANCE_SCENE_SOCKET": str(runtime_dir / "scene.sock"),
        "APPLIANCE_SCENE_DIR": str(settings.scene_dir()),       # scene.dir (default: the overlays/ folder)
        "APPLIANCE_SCENE_DEFAULT": settings.scene.default,      # scene.default (live)
        # derived: the on-screen terminal's tmux socket (scripts/start-terminal.sh, media/terminal.py)
        "APPLIANCE_TERMINAL_SOCKET": str(runtime.terminal_socket),
        # the shell's session (scripts/start-shell.sh, as the shell user) and its folder: never in the state
        "APPLIANCE_SHELL_SOCKET": str(runtime.shell_socket),
        "APPLIANCE_WORKSPACE": str(workspace_of(settings, runtime)),  # terminal.workspace
        "APPLIANCE_TERMINAL_SHELL": settings.terminal.shell,    # terminal.shell (/bin/bash)
        "APPLIANCE_TERMINAL_LOG_PERCENT": str(settings.terminal.log_percent),  # terminal.log_percent (45)
    }
    # inherited: only what any child may have (core/proc's allow-list: PATH, locale, CA bundle,
    # APPLIANCE_*); never a secret, nor the name of a secret's file
    env = child_environment(environ)
    env.update(tree)
    # who runs what: APPLIANCE_RUN_AS (every program), APPLIANCE_SHELL_RUN_AS, APPLIANCE_SHELL_OFF
    # (why the shell is off), HOME of the controller's user
    env.update(users.environment())
    # what X and PulseAudio clients (the controller, FFmpeg, pactl, paplay) look for
    env["DISPLAY"] = stream.display
    # Xvfb admits only holders of the cookie in this file (no -ac): openbox, xterm, FFmpeg's
    # x11grab, scrot, xdotool, the probes of scripts/lib.sh and anything else the tree starts
    env["XAUTHORITY"] = str(runtime.xauthority)
    env["PULSE_SERVER"] = f"unix:{pulse_socket}"
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    # `appliance` and supervisord from this venv first, whatever the caller's PATH
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, environ.get("PATH", os.defpath)])
    return env


class ProcessTree:
    """supervisord with the appliance's programs, started in the background.

    ``env`` must hold every APPLIANCE_* variable (see :func:`tree_environment`). Used as a
    context manager it stops the tree, and waits for every program to end, on exit.
    ``output``: where supervisord's (and so every program's) log lines go; None inherits.
    ``die_with_parent``: supervisord gets SIGTERM if the thread that started it dies (use
    only from a main thread). ``secrets`` (name -> value) are handed to the tree as files
    (:meth:`_hand_over_secrets`), never in its environment.
    """

    def __init__(self, env: Mapping[str, str], *, output: IO[Any] | int | None = None,
                 die_with_parent: bool = False, secrets: Mapping[str, Secret] | None = None) -> None:
        self.env = dict(env)
        self.secrets = dict(secrets or {})
        self.users = TreeUsers.from_tree(self.env)
        self.home = Path(self.env["APPLIANCE_HOME"])
        self.runtime_dir = Path(self.env["APPLIANCE_RUNTIME_DIR"])
        self.runtime = RuntimeLayout(self.runtime_dir)
        self.socket = self.runtime.supervisor_socket
        self.output = output
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle --------------------------------------------------------------------
    def command(self) -> list[str]:
        return [self.env.get("APPLIANCE_PYTHON", sys.executable), "-m", "supervisor.supervisord",
                "-n", "-c", str(self.home / "supervisord.conf")]

    def start(self) -> ProcessTree:
        """Start supervisord (in its own session, so a terminal's Ctrl-C reaches only us)."""
        if self.process is not None:
            raise MediaError("the process tree is already started")
        self.socket.unlink(missing_ok=True)
        self.runtime.controller_exit.unlink(missing_ok=True)
        self._hand_over_secrets()
        self._make_x_cookie()
        # root (the image, `sudo appliance up`): the runtime folder to the controller's user, the
        # shell's folder to the shell user; supervisord stays root only to start each program as
        # its user (conf.d: user=). umask 077: whatever the tree creates is private.
        prepare_runtime(self.runtime_dir, self.runtime.shell_dir, Path(self.env["APPLIANCE_WORKSPACE"]), self.users,
                        scripts=self.home / "scripts", programs=self.runtime.shell_programs)
        # the shell program (conf.d/shell.conf) runs those copies; off, the checkout's says why
        self.env["APPLIANCE_SHELL_PROGRAMS"] = str(
            self.runtime.shell_programs if self.users.shell.account is not None else self.home / "scripts")
        self.process = popen(
            self.command(), env=self.env, cwd=self.home, stdin=subprocess.DEVNULL,
            stdout=self.output, stderr=subprocess.STDOUT if self.output is not None else None,
            start_new_session=True, umask=0o077, die_with_parent=self.die_with_parent)
        log.info("process tree starting: supervisord pid %d, socket %s", self.process.pid, self.socket)
        return self

    @property
    def secrets_dir(self) -> Path:
        return self.runtime.secrets

    def _make_x_cookie(self) -> None:
        """A fresh MIT-MAGIC-COOKIE-1 for the tree's display in XAUTHORITY (mode 600, in the
        private runtime dir): Xvfb loads it with -auth, so no other local user can read or
        draw the live display."""
        from ..media.display import display_number
        if self.env.get("XAUTHORITY") and self.env.get("APPLIANCE_DISPLAY"):
            entry = xauthority_entry(display_number(self.env["APPLIANCE_DISPLAY"]), secrets.token_bytes(16))
            write_private(Path(self.env["XAUTHORITY"]), entry)

    def _hand_over_secrets(self) -> None:
        """No secret rides in the tree's environment, where supervisord, every helper and every
        FFmpeg or espeak-ng the controller starts would inherit it (and show it in
        /proc/<pid>/environ): each goes to a mode-0400 file of the store in the private runtime
        dir, named by APPLIANCE_SECRETS_DIR, which the controller reads once
        (:mod:`appliance.core.secrets`). A token given in the tree's environment (older callers,
        tests) is moved there too."""
        token = self.env.pop(ENV_TOKEN, "").strip()
        if token:
            self.secrets.setdefault(ENV_TOKEN, Secret(token))
        for name in list(self.env):
            if not allowed_variable(name, self.env[name]):
                del self.env[name]  # what no child may have (core/proc's allow-list)
        write_store(self.secrets_dir, self.secrets)
        self.env[ENV_STORE] = str(self.secrets_dir)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise MediaError("the process tree is not started")
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for supervisord to end; subprocess.TimeoutExpired after ``timeout``."""
        if self.process is None:
            raise MediaError("the process tree is not started")
        return self.process.wait(timeout)

    def exit_status(self) -> int:
        """The controller's exit status when it ended the tree, else supervisord's own."""
        record = self.runtime.controller_exit
        try:
            return int(record.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            pass
        rc = self.process.returncode if self.process is not None else None
        return 0 if rc is None else (rc if rc >= 0 else 128 - rc)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM supervisord and wait for it (it stops every program first).

        If it does not end within ``timeout``, it and the programs it still knew are killed.
        """
        if self.process is None:
            return 0
        if self.alive():
            known = self._known_pids()
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("supervisord did not stop within %.0f s; killing it and its programs", timeout)
                for pid in [self.pid, *known]:
                    _kill(pid)
                self.process.wait(5)
        shutil.rmtree(self.secrets_dir, ignore_errors=True)
        shutil.rmtree(self.runtime.shell_dir, ignore_errors=True)
        return self.exit_status()

    def __enter__(self) -> ProcessTree:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- XML-RPC ----------------------------------------------------------------------
    def rpc(self) -> Any:
        """supervisord's XML-RPC interface (``.supervisor.getAllProcessInfo()`` etc.)."""
        transport = SupervisorTransport(serverurl=f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def processes(self) -> dict[str, dict[str, Any]]:
        """Program name -> supervisord's process info (statename, pid, exitstatus, ...)."""
        return {info["name"]: info for info in self.rpc().supervisor.getAllProcessInfo()}

    def states(self) -> dict[str, str]:
        return {name: info["statename"] for name, info in self.processes().items()}

    def pids(self) -> dict[str, int]:
        return {name: info["pid"] for name, info in self.processes().items()}

    def _known_pids(self) -> list[int]:
        try:
            return [pid for pid in self.pids().values() if pid]
        except (OSError, xmlrpc.client.Error):
            return []

    def wait_running(self, names: Iterable[str] = PROGRAMS, timeout: float = 30.0) -> dict[str, int]:
        """Wait until every named program is RUNNING; returns their pids.

        MediaError (with the states seen) when one is FATAL/EXITED for good, supervisord
        ended, or the timeout passes.
        """
        names = tuple(names)
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while True:
            if not self.alive():
                raise MediaError(f"supervisord ended (status {self.exit_status()}) before the "
                                 f"tree was up; last states: {states or 'none'}")
            try:
                infos = self.processes()
                states = {n: infos[n]["statename"] if n in infos else "MISSING" for n in names}
                if all(s == "RUNNING" for s in states.values()):
                    return {n: infos[n]["pid"] for n in names}
                fatal = [n for n, s in states.items() if s == "FATAL"]
                if fatal:
                    raise MediaError(f"{', '.join(fatal)} could not be started; states: {states}")
            except (OSError, xmlrpc.client.Error):
                pass  # the socket is not there yet
            if time.monotonic() > deadline:
                raise MediaError(f"the process tree was not up within {timeout:.0f} s; states: {states}")
            time.sleep(0.2)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Forwarder:
    """Forwards SIGTERM and SIGINT to the tree while installed (as SIGTERM: an orderly stop)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, tree: ProcessTree) -> None:
        self.tree = tree
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping the process tree", signal.Signals(signum).name)
        self.tree.signal(signal.SIGTERM)

    def __enter__(self) -> _Forwarder:
        for signum in self.SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def read_secrets(settings: Settings, users: TreeUsers,
                 environ: MutableMapping[str, str] | None = None) -> dict[str, Secret]:
    """Every secret the config names, read once (:func:`appliance.core.secrets.collect`; as
    root, also the root-only mounts), and taken out of our own environment (a bare host's
    exported OPENAI_API_KEY) before any child starts: the tree gets them as files only.
    ConfigError when a file one came from can be read by the shell user."""
    environ = os.environ if environ is None else environ
    refs = settings.secret_refs()
    found = collect(refs, environ=environ)
    gone = scrub_environment([ref.name for ref in refs], environ)
    check_secret_files(found, users, environ, credentials=settings.credentials_path())
    for _, hit in sorted(found.items()):
        log.info("secret %s: from %s", hit.ref.describe(), hit.source)
    if gone:
        log.info("taken out of this process's environment: %s (the tree reads them from files)", ", ".join(gone))
    return {name: hit.value for name, hit in found.items()}


def run_up(settings_path: Path, settings: Settings, *, controller: list[str] | None = None) -> int:
    """Run the whole process tree until the controller ends it or we are signalled.

    Returns the controller's exit status (0 after a requested stop).
    """
    from ..control import where
    from .place import place
    runtime_dir, owned = make_runtime_dir()
    try:
        # display and control port: chosen free when unpinned, checked when pinned (before
        # anything starts); the controller reads the resolved copy of the config
        settings_path, settings = place(settings, runtime_dir=runtime_dir)
        users = TreeUsers.from_environment()
        env = tree_environment(settings_path, settings, runtime_dir=runtime_dir, controller=controller, users=users)
        secrets = read_secrets(settings, users)
        found = where.announce(settings.state_dir, port=settings.control.port, display=settings.stream.display,
                               config=settings_path, runtime_dir=runtime_dir)
        give(found, users.controller)
        log.info("display %s, control API on 127.0.0.1:%d (in %s); programs run as %s, the on-screen shell %s",
                 settings.stream.display, settings.control.port, found, users.controller.describe(),
                 f"as {users.shell.account.describe()}" if users.shell.account else f"off: {users.shell.reason}")
        tree = ProcessTree(env, die_with_parent=True, secrets=secrets)
        try:
            with _Forwarder(tree):
                tree.start()
                tree.wait()
        finally:
            tree.stop()  # ended already: only removes the handed-over secrets
            where.remove(settings.state_dir)
        status = tree.exit_status()
        log.info("process tree ended, status %d", status)
        return status
    finally:
        if owned:
            shutil.rmtree(runtime_dir, ignore_errors=True)
