"""The restart budget: at most ``recovery.max_restarts_per_hour`` calls of ``stream/start`` in
any rolling hour — the first go-live, every recovery and every start after a 409 alike.

The platform forbids "spam streaming". The times of the starts live in ``state.json``
(:class:`~appliance.core.store.StateStore`), recorded *before* each call, so the budget holds across
controller crashes, container restarts and Kubernetes reschedules: a controller that comes
back into an exhausted budget starts nothing. Past the cap the lifecycle waits, alive and
unready, until :meth:`StartBudget.blocked_until` (see :class:`~appliance.live.waiting.Hold`),
instead of exiting — an exit would only hand the loop to the orchestrator's restart policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core.store import StateStore

WINDOW_S = 3600.0


class StartBudget:
    """Counts ``stream/start`` calls against a per-hour cap, persisted in the state store."""

    def __init__(self, store: StateStore, *, per_hour: int, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.time) -> None:
        if per_hour < 1:
            raise ValueError("per_hour must be at least 1")
        self.store = store
        self.per_hour = per_hour
        self.window_s = window_s
        self.clock = clock

    def recent(self) -> list[float]:
        """Times of the starts inside the window, oldest first. A time in the future (the wall
        clock was set back) counts as now, so it blocks for at most one window."""
        now = self.clock()
        starts = sorted(min(t, now) for t in self.store.data.stream_starts)
        return [t for t in starts if now - t < self.window_s]

    def used(self) -> int:
        return len(self.recent())

    def blocked_until(self) -> float | None:
        """None while a start is allowed; else the wall-clock time the next one will be."""
        recent = self.recent()
        if len(recent) < self.per_hour:
            return None
        return recent[-self.per_hour] + self.window_s

    def record(self) -> int:
        """Count one start (persisted before the call is made); returns the starts in the window."""
        with self.store.lock:
            recent = [*self.recent(), self.clock()]
            self.store.update(stream_starts=recent)
        return len(recent)
