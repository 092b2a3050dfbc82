"""`appliance up` when it cannot start yet: stay up, unready, saying why and what to do.

In a container a bad config, a ``paths.state_dir`` outside the state volume, a pinned display
or port that is taken, or no credentials at all cannot be fixed by starting again, and an
exit would become a restart loop under any orchestrator (compose's ``on-failure``, a
Kubernetes Deployment's ``Always``). So `appliance up` holds instead: it serves the control
API's ``/health`` (200: alive, do not restart me), ``/ready`` (503 with the reason) and
``/status`` (the error and its fix) on a free port written to ``<state>/control.json`` (where
`appliance probe` looks), logs the problem once, and checks again whenever the config file
or the credentials change (and every ``RECHECK_S``). Once the problem is gone the tree starts
in the same process: fixing the ConfigMap or running ``appliance register`` is enough.

On a bare host (a terminal) the error is printed and `appliance up` exits with code 2, as
before; ``APPLIANCE_HOLD_ON_ERROR=1`` holds there too, ``=0`` never holds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..config import Settings, load_config
from ..control import where
from ..control.api import ControlServer
from ..control.metrics import render_values
from ..control.protocols import Json
from ..core.errors import ApplianceError, ConfigError, CredentialsError
from ..core.paths import IN_CONTAINER
from ..core.secrets import mount_dir
from ..live.waiting import Hold
from ..retake.credentials import ENV_TOKEN, ENV_TOKEN_FILE, resolve_credentials
from .place import probe_state_dir, raw_setting
from .privileges import TreeUsers, give_state

log = logging.getLogger("appliance.up.hold")

RECHECK_S = 30.0   # a held appliance checks again at least this often
POLL_S = 2.0       # ... and whenever the config file or the credentials change (polled)
ENV_HOLD = "APPLIANCE_HOLD_ON_ERROR"


def hold_enabled(environ: Mapping[str, str] = os.environ, *, in_container: bool = IN_CONTAINER) -> bool:
    value = environ.get(ENV_HOLD, "")
    return value == "1" if value in ("0", "1") else in_container


def check_credentials(settings: Settings, environ: Mapping[str, str] = os.environ) -> None:
    """CredentialsError when the controller could not find any token (asked of the one resolver
    the controller uses): no RETAKE_ACCESS_TOKEN, no readable RETAKE_ACCESS_TOKEN_FILE, no
    credentials file, and no ``auto_register``. (A token file named by an optional Kubernetes
    Secret that is absent counts as none; an unreadable one or a corrupt file is an error too.)"""
    if settings.auto_register or resolve_credentials(settings, environ=environ).token:
        return
    raise CredentialsError(
        f"no credentials yet: no {ENV_TOKEN} secret ({mount_dir(environ) / ENV_TOKEN}, {ENV_TOKEN_FILE}, "
        f"{ENV_TOKEN}), nothing in {settings.credentials_path()}",
        fix=f"put the token alone in ./secrets/{ENV_TOKEN} (compose), in <agent>.env (appliance fleet) or in the "
            f"Secret's key {ENV_TOKEN} (Kubernetes), or register once: `appliance register` "
            "(compose: `docker compose run --rm appliance register`)")


class HoldCommands:
    """The control API of a held appliance (a :class:`appliance.control.protocols.Commands`):
    alive, not ready, saying why; every command that needs the stream refuses with the reason."""

    def __init__(self, error: ApplianceError, *, config: Path, clock: Callable[[], float] = time.time) -> None:
        self.error = error
        self.config = config
        self.since = clock()
        self.stop_event = threading.Event()

    def hold(self) -> Hold:
        """The same shape as the controller's own holds (/status ``waiting``, /metrics ``waiting``)."""
        reason = "no_credentials" if isinstance(self.error, CredentialsError) else "bad_config"
        return Hold(reason, str(self.error))

    def _why(self) -> Json:
        return {"state": "held", "reason": self.error.message, "fix": self.error.fix or "",
                "config": str(self.config), "since": round(self.since, 1),
                "until": "the problem is fixed: the appliance re-checks when the config or the "
                         f"credentials change, and every {RECHECK_S:.0f} s",
                "waiting": self.hold().public()}

    def health(self) -> Json:
        return {"alive": True, **self._why()}

    def ready(self) -> tuple[bool, str]:
        return False, f"held: {self.error}"

    def status(self) -> Json:
        return self._why()

    def metrics(self) -> str:
        return render_values({"up": ("1 while the process runs", 1),
                              "held": ("1 while `appliance up` waits for a fix (see /status)", 1),
                              "waiting": ("1 while waiting on purpose (alive, not ready); the reason is a label", 1)},
                             {"waiting": {"reason": self.hold().reason}}).decode()

    def stop(self) -> Json:
        self.stop_event.set()
        return {"stopping": True}

    def speech(self) -> Json:
        return {"speaking": None, "pending": 0}

    def _refuse(self) -> ApplianceError:
        return ApplianceError(f"the appliance is held: {self.error}")

    # everything else needs the stream's parts: refused with the reason (HTTP 503)
    def go_live(self, wait_s: float = 60.0) -> Json:
        raise self._refuse()

    def say(self, text: str, *, wait: bool = False, priority: str = "operator") -> Json:
        raise self._refuse()

    def voice(self, *, flush: bool = False, interrupt: bool = False, volume: float | None = None,
              mute: bool | None = None) -> Json:
        raise self._refuse()

    def show(self, text: str) -> Json:
        raise self._refuse()

    def scene(self, name: str) -> Json:
        raise self._refuse()

    def scene_state(self) -> Json:
        raise self._refuse()

    def screenshot(self) -> bytes:
        raise self._refuse()

    def terminal(self, *, text: str | None = None, enter: bool = True, keys: list[str] | None = None,
                 lines: int = 40) -> Json:
        raise self._refuse()

    def direction(self, text: str, *, source: str = "api") -> Json:
        raise self._refuse()

    def chat(self, message: str) -> Json:
        raise self._refuse()

    def reply(self, message_id: str, text: str, routes: list[str] | None = None) -> Json:
        raise self._refuse()

    def read_chat(self, since: int | None = None, limit: int = 50) -> Json:
        raise self._refuse()

    def viewers(self, limit: int = 20) -> Json:
        raise self._refuse()

    def chat_to(self, name: str, message: str) -> Json:
        raise self._refuse()


def _fingerprint(paths: list[Path]) -> tuple[Any, ...]:
    """Changes when any of ``paths`` appears, disappears or changes content."""
    marks: list[Any] = []
    for path in paths:
        try:
            marks.append(hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            marks.append(None)
    return tuple(marks)


def _held_port(config: Path) -> int:
    """``control.port`` from a config that may not validate (0 when unreadable)."""
    try:
        port = int(raw_setting(config, "control", "port") or 0)
    except (TypeError, ValueError):
        return 0
    return port if 0 <= port <= 65535 else 0


def prepare(config: Path, *, checks: Callable[[Settings], None], control: Mapping[str, Any] | None = None) -> Settings:
    """Load the config, apply the command line's ``control`` settings (``port``, ``listen``:
    `appliance up --control-port/--control-listen`) and run ``checks`` (each raises an
    ApplianceError to hold on)."""
    settings = load_config(config)
    if control:
        settings = settings.model_copy(update={"control": settings.control.model_copy(update=dict(control))})
    checks(settings)
    return settings


def hold_until_fixed(error: ApplianceError, config: Path, *, checks: Callable[[Settings], None],
                     stop: threading.Event, environ: Mapping[str, str] = os.environ,
                     poll_s: float = POLL_S, recheck_s: float = RECHECK_S,
                     control: Mapping[str, Any] | None = None) -> Settings | None:
    """Serve the held control API until :func:`prepare` succeeds (returns the settings) or
    ``stop`` is set or the API's /stop is called (returns None)."""
    log.error("cannot start: %s", error)
    log.error("holding: alive but not ready; /status says why. The appliance starts by itself once it is fixed.")
    commands = HoldCommands(error, config=config)
    state_dir = probe_state_dir(config)
    server: ControlServer | None = None
    try:
        control = control or {}
        server = ControlServer(commands, state_dir=state_dir, port=control.get("port") or _held_port(config),
                               listen=control.get("listen", "127.0.0.1"))
        where.announce(state_dir, port=server.port, display=None, config=config, held=True)
        server.start()
    except (OSError, ApplianceError) as exc:
        log.error("holding without a control API (%s): probes will fail", exc)
    watched = [config, mount_dir(environ) / ENV_TOKEN]
    if environ.get(ENV_TOKEN_FILE):
        watched.append(Path(environ[ENV_TOKEN_FILE]))
    try:
        try:
            settings = load_config(config)
            watched.append(settings.credentials_path())
        except ApplianceError:
            pass
        seen, last_check = _fingerprint(watched), time.monotonic()
        while not (stop.is_set() or commands.stop_event.is_set()):
            stop.wait(poll_s)
            now, current = time.monotonic(), _fingerprint(watched)
            if current == seen and now - last_check < recheck_s:
                continue
            seen, last_check = current, now
            try:
                settings = prepare(config, checks=checks, control=control)
            except ApplianceError as exc:
                if str(exc) != str(commands.error):
                    log.error("still cannot start: %s", exc)
                    commands.error = exc
                continue
            log.info("fixed: starting the appliance")
            return settings
        return None
    finally:
        if server is not None:
            server.close()
        where.remove(state_dir)


def is_holdable(error: ApplianceError) -> bool:
    """Errors a restart cannot fix: config, placement, state volume, credentials."""
    return isinstance(error, (ConfigError, CredentialsError))


def startup_checks(settings: Settings) -> None:
    """What must hold before the tree starts: the state on a volume (in a container) and the
    controller's alone (given to its user when we start as root), and credentials the
    controller can find. (Display and port: :func:`appliance.up.place.place`.)"""
    from .place import check_pinned, check_state_on_volume
    check_state_on_volume(settings)
    give_state(settings.state_dir, TreeUsers.from_environment())
    check_pinned(settings)
    check_credentials(settings)


def up_or_hold(config: Path, *, controller: list[str] | None = None,
               environ: Mapping[str, str] = os.environ, control: Mapping[str, Any] | None = None) -> int:
    """`appliance up`: start the tree; when it cannot start (:func:`is_holdable`) and holding
    is on (:func:`hold_enabled`), hold until it can, then start it. A stand-in ``controller``
    (tests) skips the credentials check."""
    from .tree import run_up
    checks = startup_checks if controller is None else _without_credentials
    holding = hold_enabled(environ)
    stop = threading.Event()
    settings: Settings | None = None
    while True:
        try:
            if settings is None:
                settings = prepare(config, checks=checks, control=control)
            return run_up(config, settings, controller=controller)
        except ApplianceError as exc:
            if not (holding and is_holdable(exc)):
                raise
            settings = _hold_with_signals(exc, config, checks=checks, stop=stop, environ=environ, control=control)
            if settings is None:
                log.info("stopped while held")
                return 0


def _without_credentials(settings: Settings) -> None:
    from .place import check_pinned, check_state_on_volume
    check_state_on_volume(settings)
    give_state(settings.state_dir, TreeUsers.from_environment())
    check_pinned(settings)


def _hold_with_signals(error: ApplianceError, config: Path, *, checks: Callable[[Settings], None],
                       stop: threading.Event, environ: Mapping[str, str],
                       control: Mapping[str, Any] | None = None) -> Settings | None:
    """:func:`hold_until_fixed` with SIGTERM/SIGINT ending the hold (an orderly stop)."""
    import signal
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return hold_until_fixed(error, config, checks=checks, stop=stop, environ=environ, control=control)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
