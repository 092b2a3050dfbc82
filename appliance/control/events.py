"""The in-process event bus, and its Server-Sent Events form for outside agents (``GET /events``).

Everything that happens on stream — a chat message, a tip, a trade, a follow, the viewer count,
a lifecycle state, an utterance starting or finishing, which message is being answered, a reply
going out — is published once on the :class:`EventBus`:

    bus = EventBus(capacity=1000)
    event = bus.publish("chat", {"id": "...", "user": {...}, "text": "hi"})   # -> Event(id=...)
    events, gap = bus.since(last_id)            # what a consumer missed (from the ring buffer)
    events = bus.wait(last_id, timeout=15.0)    # block until something newer (or the timeout)
    unsubscribe = bus.subscribe(callback)       # called in the publisher's thread: keep it quick

Ids increase monotonically, also across restarts (the first id of a process is its start time
in microseconds), so a client's ``Last-Event-ID`` from before a restart is never mistaken for a
newer event. The ring buffer is bounded; a client that fell further behind than it holds gets a
``gap`` event naming the ids it lost, never a silent hole.

:func:`sse_stream` writes the SSE wire format (for the control server's event loop): ``retry:``
once, ``id:``/``event:``/``data:`` per event, and a ``:`` comment line as keep-alive every 15 s.

This module imports only the standard library, so any layer may take ``bus.publish`` as a callable.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("appliance.events")

CAPACITY = 1000
KEEPALIVE_S = 15.0
RETRY_MS = 2000
KINDS = ("chat", "tip", "trade", "follow", "viewers", "state", "utterance_started",
         "utterance_finished", "utterance_dropped", "sentence_started", "sentence_finished",
         "answering", "reply", "gap")


@dataclass(frozen=True)
class Event:
    """One published event: ``id`` increases monotonically; ``time`` is epoch seconds."""

    id: int
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "time": round(self.time, 3), "data": dict(self.data)}

    def sse(self) -> bytes:
        """The event in SSE wire format (one ``data:`` line: the JSON has no newline)."""
        body = json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n".encode()


class EventBus:
    """Publish/subscribe inside the appliance, with a bounded history for late consumers."""

    def __init__(self, *, capacity: int = CAPACITY, clock: Callable[[], float] = time.time,
                 first_id: int | None = None) -> None:
        self._events: deque[Event] = deque(maxlen=max(1, capacity))
        self._cond = threading.Condition()
        self._clock = clock
        self._next = first_id if first_id is not None else int(clock() * 1_000_000)
        self._subscribers: list[Callable[[Event], None]] = []

    @property
    def last_id(self) -> int:
        """The id of the newest event (one below the first id when nothing was published)."""
        with self._cond:
            return self._next - 1

    def publish(self, kind: str, data: Mapping[str, Any] | None = None) -> Event:
        """Record and hand out one event; never blocks on a consumer."""
        with self._cond:
            event = Event(self._next, kind, dict(data or {}), self._clock())
            self._next += 1
            self._events.append(event)
            subscribers = list(self._subscribers)
            self._cond.notify_all()
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed on %s", kind)
        return event

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event from now on (in the publisher's thread: it
        must be quick and never block). Returns the function that unsubscribes."""
        with self._cond:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def since(self, last_id: int) -> tuple[list[Event], tuple[int, int] | None]:
        """Events newer than ``last_id`` still in the buffer, and the ids lost in between
        (``(first, last)`` inclusive) when the buffer no longer reaches back that far."""
        with self._cond:
            events = [e for e in self._events if e.id > last_id]
            if not self._events or last_id >= self._next - 1:
                return events, None
            oldest = self._events[0].id
            gap = (last_id + 1, oldest - 1) if oldest > last_id + 1 and last_id >= 0 else None
            return events, gap

    def wait(self, last_id: int, timeout: float) -> list[Event]:
        """Block until an event newer than ``last_id`` exists (or ``timeout``); those events."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._next - 1 <= last_id:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            return [e for e in self._events if e.id > last_id]


def parse_last_event_id(value: str | None) -> int | None:
    """A ``Last-Event-ID`` header (or ``?last_event_id=``) as an int; None when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 20 else None


async def sse_stream(bus: EventBus, last_id: int | None, *, wait: Callable[[float], Awaitable[None]],
                     open_: Callable[[], bool], kinds: Iterable[str] | None = None,
                     keepalive_s: float = KEEPALIVE_S, retry_ms: int = RETRY_MS) -> AsyncIterator[bytes]:
    """The byte chunks of one SSE response: ``retry:`` once, then every event after ``last_id``
    (None: only new ones), a ``gap`` event for ids the ring buffer lost, and a keep-alive
    comment every ``keepalive_s``. ``wait(seconds)`` returns when something may have been
    published (or after ``seconds``); the stream ends as soon as ``open_()`` is false (the
    server closing, the console session revoked), checked at least once a second."""
    wanted = set(kinds) if kinds else None
    yield f"retry: {retry_ms}\n\n".encode()
    cursor = bus.last_id if last_id is None else last_id
    if last_id is not None:
        events, gap = bus.since(last_id)
        if gap is not None:
            lost = Event(gap[1], "gap", {"from_id": gap[0], "to_id": gap[1],
                                         "reason": "older than the event buffer"}, time.time())
            yield lost.sse()
        for event in events:
            cursor = event.id
            if wanted is None or event.kind in wanted:
                yield event.sse()
    quiet_since = time.monotonic()
    while open_():
        events, _ = bus.since(cursor)
        if not events:
            if time.monotonic() - quiet_since >= keepalive_s:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await wait(min(1.0, keepalive_s))
            continue
        quiet_since = time.monotonic()
        for event in events:
            cursor = event.id
            if wanted is None or event.kind in wanted:
                yield event.sse()
