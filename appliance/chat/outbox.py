"""Everything the agent says leaves through :class:`Outbox`: filtered, rate-capped, journaled, routed.

For each text: the outgoing filter (no secret, no pings, the link policy, the length cap); a
token from the global :class:`RateLimiter` (``chat.max_messages_per_minute``, ``chat.burst``)
when it goes to chat; the journal's ``pending`` row committed *before* ``stream/chat/send`` and
``sent`` right after (see :mod:`.journal`); then the other routes (voice, caption: injected
callables ``(text, priority)`` that must not block; priority is ``reply``, or ``proactive`` for a
line said into a quiet chat), the ``reply`` event, and the content-window line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import RetakeConflict, RetakeError, RetakeUnauthorized
from ..core.sanitize import clean_text
from ..retake.client import RetakeClient
from .journal import MAX_ATTEMPTS, Journal
from .moderation import OutgoingFilter, Refused

log = logging.getLogger("appliance.chat")


class RateLimiter:
    """A token bucket: ``burst`` messages back to back, then ``per_minute`` on average."""

    def __init__(self, per_minute: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(max(1, burst))
        self.clock = clock
        self._tokens = self.capacity
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait_time(self) -> float:
        """Seconds until a token is available (0: now)."""
        with self._lock:
            self._refill()
            return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self) -> bool:
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def acquire(self, stop: threading.Event, timeout: float | None = None) -> bool:
        """Take a token, waiting (interruptibly) at most ``timeout`` seconds (None: as long as it takes)."""
        deadline = None if timeout is None else self.clock() + timeout
        while not stop.is_set():
            if self.take():
                return True
            wait = self.wait_time()
            if deadline is not None and self.clock() + wait > deadline:
                return False
            stop.wait(min(max(wait, 0.01), 1.0))
        return False


@dataclass(frozen=True)
class Delivery:
    ok: bool
    message_id: str | None = None
    reason: str = ""
    text: str = ""
    refused: bool = False  # the outgoing filter stopped it
    row: int | None = None  # the journal's row of a line the platform did not take (see Outbox.retry)


class Outbox:
    """Sends into the agent's own chat (and the other routes), exactly once per journal row."""

    def __init__(self, client: RetakeClient, *, user_db_id: str, journal: Journal, guard: OutgoingFilter,
                 limiter: RateLimiter, stop_event: threading.Event,
                 outputs: Mapping[str, Callable[[str, str], None]] | None = None,
                 publish: Callable[[str, dict[str, Any]], object] = lambda kind, data: None,
                 on_sent: Callable[[str], None] = lambda text: None,
                 on_fatal: Callable[[RetakeError], None] = lambda exc: None,
                 on_conflict: Callable[[], None] = lambda: None) -> None:
        self.client, self.user_db_id, self.journal, self.guard = client, user_db_id, journal, guard
        self.limiter, self.stop_event = limiter, stop_event
        self.outputs = dict(outputs or {})
        self.publish, self.on_sent, self.on_fatal, self.on_conflict = publish, on_sent, on_fatal, on_conflict
        self._lock = threading.Lock()  # one send at a time, in order
        self._boot_n = journal.last_n()  # rows up to this one were left by an earlier process
        self._failed_at: dict[int, float] = {}  # rows of this process whose send failed, and when
        self.sent_count = 0
        self.refused = 0
        self.capped = 0

    def deliver(self, text: str, *, to_ids: Iterable[str] = (), routes: Iterable[str] = ("chat",),
                brain: str = "", trusted: bool = False, wait_s: float | None = None) -> Delivery:
        """Filter, cap, journal, send; a Delivery that says whether (and why not) it went out."""
        ids, routes = list(to_ids), tuple(routes)
        try:
            text = self.guard.check(text, trusted=trusted)
        except Refused as exc:
            self.refused += 1
            log.warning("outgoing filter: %s (from %s)", exc.message, brain or "operator")
            self.journal.finish(ids)
            return Delivery(False, reason=exc.message, refused=True)
        if "chat" in routes and not self.limiter.acquire(self.stop_event, wait_s):
            self.capped += 1
            log.info("global rate cap: not sent (%s): %s", brain or "operator", clean_text(text, 60))
            self.journal.finish(ids)
            return Delivery(False, reason="the global outgoing rate cap (chat.max_messages_per_minute) is reached",
                            text=text)
        with self._lock:
            n = self.journal.begin(text, to_ids=ids, routes=routes, brain=brain)
            return self._send(n, text, ids, routes, brain, attempts=0)

    def _send(self, n: int, text: str, ids: list[str], routes: tuple[str, ...], brain: str,
              attempts: int) -> Delivery:
        message_id: str | None = None
        if "chat" in routes:
            try:
                message_id = self._post(text)
            except RetakeError as exc:
                self.journal.failed(n, final=attempts + 1 >= MAX_ATTEMPTS)
                self._failed_at[n] = self.journal.db.clock()
                return Delivery(False, reason=exc.message, text=text, row=n)
        self.journal.sent(n, message_id)
        self.sent_count += 1
        for route in routes:
            if route != "chat" and route in self.outputs:
                try:
                    self.outputs[route](text, "proactive" if brain == "proactive" else "reply")
                except Exception:
                    log.exception("reply route %s failed", route)
        self.publish("reply", {"text": text, "to": ids, "routes": list(routes), "brain": brain,
                               "message_id": message_id})
        if "chat" in routes:
            log.info("chat > %s", text)
            self.on_sent(text)
        return Delivery(True, message_id, text=text)

    def retry(self, failed: Delivery, *, brain: str = "operator", wait_s: float | None = None) -> Delivery:
        """Send a chat line that did not go out once more: the same journal row when the platform
        refused it (never a second copy, whoever resends first), anew when the rate cap held it."""
        if failed.ok or failed.refused:
            return failed
        if failed.row is None:
            return self.deliver(failed.text, routes=("chat",), brain=brain, trusted=True, wait_s=wait_s)
        if not self.limiter.acquire(self.stop_event, wait_s):
            self.capped += 1
            return failed
        with self._lock:
            current = self.journal.outgoing(failed.row)
            if current is None or current.state != "pending":
                sent = current is not None and current.state == "sent"
                return Delivery(sent, current.message_id if sent and current else None, text=failed.text,
                                reason="" if sent else f"given up after {MAX_ATTEMPTS} attempts: {failed.reason}")
            self._failed_at.pop(failed.row, None)
            return self._send(failed.row, current.text, list(current.to_ids), current.routes, current.brain,
                              attempts=current.attempts)

    def _post(self, text: str) -> str | None:
        for attempt in (1, 2):
            try:
                result = self.client.chat_send(text, self.user_db_id)
                value = getattr(result, "message_id", None) or (result.model_extra or {}).get("message_id")
                return str(value) if value else None
            except RetakeConflict:
                if attempt == 2:
                    raise
                self.on_conflict()
            except RetakeUnauthorized as exc:
                self.on_fatal(exc)
                raise
            except RetakeError as exc:
                log.warning("chat send failed: %s", exc.message)
                raise
        raise AssertionError("unreachable")

    def recover(self, *, max_age_s: float, history_from: float) -> int:
        """Re-send what a crash (or a failed send) left ``pending`` — only rows whose last attempt
        ended before ``history_from`` (when the caught-up history that would show them as sent was
        read; that history has been ingested, so a row that did reach the platform is ``sent`` by
        now). Rows older than ``max_age_s`` are let go. Returns how many went out."""
        resent = 0
        for row in self.journal.pending():
            leftover = row.n <= self._boot_n
            if not leftover and self._failed_at.get(row.n, float("inf")) >= history_from:
                continue  # in flight, or failed after that history was read: the next round decides
            with self._lock:
                current = self.journal.outgoing(row.n)
                if current is None or current.state != "pending":
                    continue
                if self.journal.db.clock() - current.created > max_age_s:
                    log.info("message %d was never confirmed and is too old: not sent again", row.n)
                    self.journal.give_up(row.n)
                    continue
                if "chat" in current.routes and not self.limiter.take():
                    continue  # the cap holds for re-sends too; the next round tries again
                log.info("message %d did not reach the platform: sending it now", row.n)
                self._failed_at.pop(row.n, None)
                resent += self._send(row.n, current.text, list(current.to_ids), current.routes, current.brain,
                                     attempts=current.attempts).ok
        return resent
