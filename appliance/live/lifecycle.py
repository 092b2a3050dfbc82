"""`appliance live`: the reference's 10-step go-live sequence as one supervised state machine.

    lifecycle.py  this file: run the steps, then the supervision; whatever ends it, shut down
    machine.py    the states, the legal transitions, the one transition function
    steps.py      going live (credentials ... opening line, the builder told)
    supervise.py  staying live (the LIVE loop, recovery, the restart budget, holds)
    parts.py      the collaborators (typed), the chat factory, one run's shared state

Whatever escapes (any exception) still ends in :meth:`Lifecycle._shutdown`: the end card on
screen for ``scene.ending_s`` while the encoder still streams it (when the scenes follow the
stream), then the encoder, then one short ``stream/stop``, the final state saved.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..chat import ChatLoop
from ..core.errors import ApplianceError, RetakeUnauthorized
from ..core.sanitize import clean_text
from ..core.store import StateStore
from ..retake.client import RetakeClient
from ..retake.credentials import Credentials
from .budget import StartBudget
from .machine import Machine, Metrics, State, Stopped
from .parts import LIVENESS_WINDOW_S, Parts, Run, Timing
from .steps import GoLive
from .supervise import STOP_CALL_TIMEOUT_S, Supervisor

if TYPE_CHECKING:  # the composed settings, handed in by the composition root
    from ..config import Settings
    from .direction import Directions

__all__ = ["LIVENESS_WINDOW_S", "Lifecycle", "Metrics", "State"]
log = logging.getLogger("appliance.lifecycle")


class Lifecycle:
    """Runs one agent's stream from credentials to stop. Every collaborator is injectable
    (:class:`~appliance.live.parts.Parts`); what the control API reads is public here."""

    def __init__(self, settings: Settings, parts: Parts, *, timing: Timing | None = None,
                 stop_event: threading.Event | None = None,
                 progress: Callable[[str], None] = print) -> None:
        self.settings, self.parts = settings, parts
        self.timing = timing = timing or Timing()
        self.stop_event = stop_event or threading.Event()
        self.machine = Machine(stop_event=self.stop_event, clock=timing.clock, progress=progress,
                               publish=parts.publish)
        budget = StartBudget(parts.store, per_hour=settings.recovery.max_restarts_per_hour, clock=timing.wall_clock)
        self.run_state = Run(settings=settings, parts=parts, timing=timing, machine=self.machine, budget=budget,
                             client=parts.client)
        if settings.control.autostart:
            self.run_state.go_live_requested.set()
        self.supervisor = Supervisor(self.run_state)
        self.steps = GoLive(self.run_state, self.supervisor)
        if parts.scenes is not None:
            self.machine.on_enter.append(parts.scenes.follow(self.machine))
        if parts.heartbeat is not None:
            self.supervisor.on_hold_tick = functools.partial(parts.heartbeat.tick, self.run_state)

    # --- what the control API reads ----------------------------------------------------------

    @property
    def metrics(self) -> Metrics:
        return self.machine.metrics

    @property
    def clock(self) -> Callable[[], float]:
        return self.timing.clock

    @property
    def wall_clock(self) -> Callable[[], float]:
        return self.timing.wall_clock

    @property
    def liveness_window_s(self) -> float:
        return self.timing.liveness_window_s

    @property
    def store(self) -> StateStore:
        return self.parts.store

    @property
    def budget(self) -> StartBudget:
        return self.run_state.budget

    @property
    def client(self) -> RetakeClient:
        return self.run_state.client

    @property
    def creds(self) -> Credentials | None:
        return self.run_state.creds

    @property
    def chat(self) -> ChatLoop | None:
        return self.run_state.chat

    @property
    def go_live_started_at(self) -> float:
        """When the current go-live's clock started (the process start, or the go_live request)."""
        return self.machine.t0

    @property
    def directions(self) -> Directions | None:
        """The builder's direction channel (``Commands.direction``), when wired."""
        return self.parts.directions

    def request_stop(self) -> None:
        self.stop_event.set()

    def request_go_live(self) -> None:
        """Go live now if standing by (idempotent: nothing happens once started)."""
        self.run_state.go_live_requested.set()

    # --- run ----------------------------------------------------------------------------------

    def run(self) -> int:
        """The whole job; returns the process exit code. Whatever escapes a step — an
        ApplianceError or any other exception (a transport error nobody mapped, a bug) — ends
        in the same orderly shutdown; only an unexpected one is reported as a crash."""
        try:
            self.steps.prepare()
            self.steps.standby()
            self.steps.go_live()
            self.supervisor.stay_live()
        except Stopped:
            pass
        except RetakeUnauthorized as exc:
            self.run_state.fatal = ApplianceError(f"retake.tv refused the access token ({exc.message})",
                                                  fix="re-check RETAKE_ACCESS_TOKEN or the credentials file; stopping")
        except ApplianceError as exc:
            self.run_state.fatal = exc
        except Exception as exc:
            self.run_state.fatal = self._crash(exc)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: shut down, then let it go on
            self.run_state.fatal = ApplianceError(f"interrupted ({type(exc).__name__})")
            self._shutdown()
            raise
        return self._shutdown()

    @staticmethod
    def _crash(exc: BaseException) -> ApplianceError:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        for line in "".join(lines).splitlines()[-20:]:  # cleaned: an answer's text must not drive a terminal
            log.error("crash: %s", clean_text(line, 300))
        return ApplianceError(f"the controller crashed: {type(exc).__name__}: {clean_text(exc, 200)}",
                              fix="stopped cleanly (encoder, stream/stop); see the log and report it")

    def _end_card(self) -> None:
        """The end card with this stream's figures, on screen while the encoder still sends it
        (``scene.ending_s``), when the stream is up and the scenes follow it."""
        scenes, metrics = self.parts.scenes, self.metrics
        if scenes is None or metrics.live_since is None or self.parts.encoder.health().state != "running":
            return
        chat = self.run_state.chat
        seconds = scenes.ending(duration_s=self.clock() - metrics.live_since, peak_viewers=metrics.peak_viewers,
                                messages=chat.stats.handled if chat else 0,
                                replies=chat.stats.answered if chat else 0)
        if seconds > 0:
            time.sleep(seconds)  # the stop event is set: this wait is the end card's, bounded by the setting

    def _shutdown(self) -> int:
        """The end card, then the encoder (nothing streams after this), then one stream/stop
        with a short deadline, then the final state; every step runs even if one before it failed."""
        run, store = self.run_state, self.parts.store
        if isinstance(run.fatal, RetakeUnauthorized):
            run.fatal = ApplianceError(f"retake.tv refused the access token ({run.fatal.message})",
                                       fix="re-check RETAKE_ACCESS_TOKEN or the credentials file")
        if self.metrics.state in (State.STOPPING, State.STOPPED, State.FAILED):
            return run.fatal.exit_code if run.fatal else 0
        self.machine.enter(State.STOPPING, run.fatal.message if run.fatal else "stop requested")
        self.stop_event.set()
        try:
            self._end_card()
        except Exception:
            log.exception("end card not shown")
        final: dict[str, object] = {}
        was_started = run.stream_started
        try:
            self.parts.encoder.stop()
        except Exception:
            log.exception("encoder stop failed")
        if was_started:
            run.stream_started = False
            try:
                result = run.client.with_limits(timeout_s=STOP_CALL_TIMEOUT_S, retries=0).stream_stop()
                final = result.model_dump()
            except Exception as exc:
                message = exc.message if isinstance(exc, ApplianceError) else type(exc).__name__
                log.warning("stream/stop: %s", message)
                final = {"error": message}
        if run.chat:
            run.chat.join(5)
        try:
            final.update(restarts=self.metrics.restarts, thumbnails=self.metrics.thumbnails,
                         messages_in=store.data.messages_in, messages_out=store.data.messages_out,
                         ended=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            store.update(last_stream=final, last_error=run.fatal.message if run.fatal else "")
        except Exception:
            log.exception("final state not saved")
        if was_started:
            run.progress("final stats: " + ", ".join(f"{k}={v}" for k, v in final.items()))
        if run.fatal:
            try:
                self.parts.notifier.notify("stopped_on_error", str(run.fatal))
            except Exception:
                log.exception("notification failed")
            run.progress(f"error: {run.fatal}")
            self.machine.enter(State.FAILED)
            return run.fatal.exit_code
        self.machine.enter(State.STOPPED)
        return 0
