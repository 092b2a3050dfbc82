"""The lifecycle's explicit state machine: the states, the only legal transitions, and
:class:`Machine` — the one place a transition happens, is logged (with how long the previous
step took) and is announced (``publish("state", ...)``).

    CREDENTIALS -> VERIFICATION -> SKILL_CHECK -> RTMP -> STREAM_START -> ENCODER_START
    -> WAIT_LIVE -> THUMBNAIL -> OPEN_CHAT -> LIVE -> (RECOVERING -> RTMP ...) -> STOPPING -> STOPPED
    (WAITING: alive and unready, saying why and until when — see :mod:`appliance.live.waiting`)

The steps (:mod:`.steps`) and the supervision (:mod:`.supervise`) move it; :mod:`.lifecycle`
runs both and shuts down.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .waiting import Hold

log = logging.getLogger("appliance.lifecycle")
Publish = Callable[[str, Mapping[str, Any]], object]  # the event bus's publish (kind, data)


class State(enum.Enum):
    INIT = "init"
    CREDENTIALS = "credentials"
    VERIFICATION = "verification"
    SKILL_CHECK = "skill_check"
    RTMP = "rtmp"
    STREAM_START = "stream_start"
    ENCODER_START = "encoder_start"
    WAIT_LIVE = "wait_live"
    THUMBNAIL = "thumbnail"
    OPEN_CHAT = "open_chat"
    LIVE = "live"
    RECOVERING = "recovering"
    WAITING = "waiting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


_S = State
TRANSITIONS: dict[State, set[State]] = {
    _S.INIT: {_S.CREDENTIALS},
    _S.CREDENTIALS: {_S.VERIFICATION, _S.WAITING},
    _S.WAITING: {_S.CREDENTIALS, _S.RTMP},  # a hold ends: look again / start the stream
    _S.VERIFICATION: {_S.SKILL_CHECK},
    _S.SKILL_CHECK: {_S.RTMP, _S.WAITING},
    _S.RTMP: {_S.STREAM_START, _S.RECOVERING},
    _S.STREAM_START: {_S.ENCODER_START, _S.RECOVERING},
    _S.ENCODER_START: {_S.WAIT_LIVE, _S.RECOVERING},
    _S.WAIT_LIVE: {_S.THUMBNAIL, _S.RECOVERING, _S.LIVE},  # LIVE directly after a mid-stream recovery
    _S.THUMBNAIL: {_S.OPEN_CHAT},
    _S.OPEN_CHAT: {_S.LIVE},
    _S.LIVE: {_S.RECOVERING},
    _S.RECOVERING: {_S.RTMP, _S.RECOVERING, _S.WAITING},
}
_ANYTIME = {_S.STOPPING, _S.FAILED}
for _targets in TRANSITIONS.values():
    _targets |= _ANYTIME
TRANSITIONS[_S.STOPPING] = {_S.STOPPED, _S.FAILED}


class Stopped(Exception):
    """The stop event was set while a step waited."""


@dataclass
class Metrics:
    """What /metrics and `status` show; written by the lifecycle only."""

    state: State = State.INIT
    state_since: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.monotonic)
    live_since: float | None = None
    is_live: bool = False
    viewers: int = 0
    peak_viewers: int = 0  # this stream's highest count (the end card's figure)
    restarts: int = 0
    thumbnails: int = 0
    last_error: str = ""
    last_heartbeat: float = field(default_factory=time.monotonic)  # last platform status read
    loop_heartbeat: float = field(default_factory=time.monotonic)  # last supervising loop turn
    go_live_s: float | None = None
    token_address: str = ""
    market_cap: float | None = None
    verified: bool = False
    step_times: dict[str, float] = field(default_factory=dict)
    hold: Hold | None = None  # while WAITING: why, and until when


class Machine:
    """The current state and the metrics, the one transition function, interruptible waits."""

    def __init__(self, *, stop_event: threading.Event, clock: Callable[[], float],
                 progress: Callable[[str], None], publish: Publish) -> None:
        self.stop_event, self.clock, self.progress, self.publish = stop_event, clock, progress, publish
        now = clock()
        self.metrics = Metrics(started_at=now, state_since=now, last_heartbeat=now, loop_heartbeat=now)
        self.t0 = now  # when the current go-live's clock started (the process start, or go_live)
        # after a transition, with (old, new): the scenes follow the stream from here
        self.on_enter: list[Callable[[State, State], None]] = []

    @property
    def state(self) -> State:
        return self.metrics.state

    def enter(self, new: State, detail: str = "") -> None:
        old = self.metrics.state
        if new not in TRANSITIONS.get(old, set()):
            raise AssertionError(f"illegal transition {old.value} -> {new.value}")
        now = self.clock()
        took = now - self.metrics.state_since
        self.metrics.step_times[old.value] = round(took, 3)
        self.metrics.state, self.metrics.state_since = new, now
        self.metrics.loop_heartbeat = now  # a moving state machine is a live one
        line = f"[{now - self.t0:6.1f}s] {old.value} done in {took:.2f}s -> {new.value}"
        self.progress(line + (f": {detail}" if detail else ""))
        log.info("state %s -> %s%s", old.value, new.value, f" ({detail})" if detail else "")
        for hook in self.on_enter:
            try:
                hook(old, new)
            except Exception:
                log.exception("state hook failed on %s", new.value)
        self.publish("state", {"state": new.value, "detail": detail})

    def wait(self, seconds: float) -> None:
        """Sleep, or raise :class:`Stopped` as soon as the stop event is set."""
        if self.stop_event.wait(max(0.0, seconds)):
            raise Stopped()

    def beat(self) -> None:
        """The LIVE loop is turning: /health judges liveness by this."""
        self.metrics.loop_heartbeat = self.clock()
