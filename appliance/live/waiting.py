"""Holds: the appliance stays up, alive and unready, saying why and until when.

A :class:`Hold` is the lifecycle's WAITING state: instead of exiting (which an orchestrator's
restart policy would turn into a loop — of ``stream/start`` calls, or of crash reports), the
controller keeps its control API up, ``/health`` answers 200, ``/ready`` 503 with the reason,
``/status`` and ``/metrics`` say why and until when, and the operator is told once.

Reasons in use (a short word, a metrics label):

* ``cooldown`` — the restart budget is spent (:mod:`appliance.live.budget`); ends at ``until``.
* ``no_credentials`` — nothing to go live with yet; ends when credentials appear (``until`` None).

Anything that must wait for the operator (bad config, missing credentials) can be a Hold: the
reason, one line saying what to run, and ``until`` when it ends by itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..core.sanitize import clean_text


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True)
class Hold:
    """Why the appliance waits, what to do about it, and until when (wall clock; None: until
    the cause is fixed)."""

    reason: str
    detail: str
    until: float | None = None

    def key(self) -> str:
        """Identifies this hold across restarts (the operator is told once per key)."""
        return f"{self.reason}:{round(self.until) if self.until is not None else ''}"

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.until is None:
            return None
        return max(0.0, self.until - (time.time() if now is None else now))

    def line(self) -> str:
        when = f" until {iso(self.until)}" if self.until is not None else ""
        return f"waiting ({self.reason}){when}: {clean_text(self.detail, 400)}"

    def public(self, now: float | None = None) -> dict[str, Any]:
        """For ``/status`` (JSON)."""
        left = self.seconds_left(now)
        return {"reason": self.reason, "detail": clean_text(self.detail, 400),
                "until": iso(self.until) if self.until is not None else None,
                "seconds_left": round(left, 1) if left is not None else None}
