"""The heartbeat while not live (skill section 8): every ``live.heartbeat.every_s`` (4 h by
default) while the appliance holds — standing by, or in a cool-down — it

1. reads ``stream/status`` (am I live?),
2. reads ``stream/comments`` (any new chat since the last heartbeat?),
3. reads ``tokens/<address>/stats`` (the token's market cap),
4. decides (:func:`decide`): **stream** (attention is there: enough new comments, or the market
   cap moved a lot), **chat** (someone spoke: answer once with ``offline_reply``) or **idle**,
5. acts — a "stream" decision goes live by itself only with ``heartbeat.go_live: true`` while
   standing by (else the builder is asked) — and tells the builder (a ``heartbeat`` notification).

The time of the last heartbeat is kept in ``state.json``, so restarts do not multiply them.
Every read has a short deadline and one retry; a failed read is reported, never fatal.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.errors import RetakeConflict, RetakeError, RetakeUnauthorized
from ..core.sanitize import clean_name, clean_text
from ..core.store import StateStore
from ..retake.normalize import Comment
from .parts import NotifierLike, Run
from .settings import HeartbeatConfig

log = logging.getLogger("appliance.live.heartbeat")
READ_TIMEOUT_S = 10.0
MAX_SEEN = 500
TIME_PRECISION_S = 1.0  # a comment's time may be to the second (the skill's example): never newer than it says


class Decision(enum.Enum):
    STREAM = "stream"
    CHAT = "chat"
    IDLE = "idle"


@dataclass(frozen=True)
class Reading:
    """What one heartbeat read (None: could not be read)."""

    is_live: bool | None = None
    viewers: int | None = None
    comments: list[Comment] = field(default_factory=list)  # new since the last heartbeat, not ours
    market_cap: float | None = None
    previous_market_cap: float | None = None
    errors: list[str] = field(default_factory=list)

    def market_cap_move_pct(self) -> float | None:
        if self.market_cap is None or not self.previous_market_cap:
            return None
        return (self.market_cap - self.previous_market_cap) / self.previous_market_cap * 100


def decide(reading: Reading, cfg: HeartbeatConfig) -> tuple[Decision, str]:
    """Stream, answer chat, or idle — and why (one line)."""
    count = len(reading.comments)
    moved = reading.market_cap_move_pct()
    if count >= cfg.stream_comments:
        return Decision.STREAM, f"{count} new comments while offline: the audience is there"
    if moved is not None and abs(moved) >= cfg.stream_move_pct:
        return Decision.STREAM, f"the token's market cap moved {moved:+.0f}% since the last heartbeat"
    if count:
        return Decision.CHAT, f"{count} new comment{'s' * (count != 1)}: answer in chat"
    return Decision.IDLE, "quiet: no new comments" + (f", market cap {moved:+.0f}%" if moved is not None else "")


class Heartbeat:
    """Runs :func:`decide` on a schedule while the lifecycle holds (its ``tick`` is called on
    every turn of a hold)."""

    def __init__(self, cfg: HeartbeatConfig, *, notifier: NotifierLike, store: StateStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg, self.notifier, self.store, self.clock = cfg, notifier, store, clock
        self._since: float | None = None  # the first tick: heartbeats count from here (or the saved one)
        self._seen: set[str] = set()
        self.beats = 0

    def due(self) -> bool:
        now = self.clock()
        if self._since is None:
            self._since = now
        last = self.store.data.last_heartbeat or self._since
        return now - last >= self.cfg.every_s

    def tick(self, run: Run) -> None:
        """One turn of a hold: a heartbeat when one is due and the credentials are known."""
        if run.creds is None or not self.due():
            return
        try:
            self.beat(run)
        except RetakeUnauthorized:
            raise
        except Exception:
            log.exception("heartbeat failed; the next one is due in %.0f s", self.cfg.every_s)
            self.store.update(last_heartbeat=self.clock())

    # --- one heartbeat ------------------------------------------------------------------------

    def read(self, run: Run) -> Reading:
        creds = run.creds
        if creds is None:
            return Reading(errors=["no credentials"])
        client = run.client.with_limits(timeout_s=READ_TIMEOUT_S, retries=1)
        errors: list[str] = []
        is_live = viewers = market_cap = None
        address = creds.token_address
        try:
            status = client.stream_status()
            is_live, viewers, address = status.is_live, status.viewers, status.token_address or address
        except RetakeError as exc:
            errors.append(f"status: {exc.message}")
        comments: list[Comment] = []
        try:
            comments = client.comments(creds.userDbId, limit=50)
        except RetakeConflict:
            pass  # no session between streams: the platform's routine answer
        except RetakeError as exc:
            errors.append(f"comments: {exc.message}")
        if address:
            try:
                market_cap = client.token_stats(address).market_cap
            except RetakeError as exc:
                errors.append(f"token stats: {exc.message}")
        since = self.store.data.last_heartbeat or (self.clock() - self.cfg.every_s)
        new = [c for c in comments if c.id not in self._seen and c.user_id != creds.userDbId
               and c.username.casefold() != creds.agent_name.casefold()
               and (c.timestamp is None or c.timestamp.timestamp() > since - TIME_PRECISION_S)]
        self._seen |= {c.id for c in comments}
        if len(self._seen) > MAX_SEEN:
            self._seen = {c.id for c in comments}
        previous = self.store.data.milestones.get("heartbeat_market_cap")
        if market_cap is not None and address:
            run.parts.publish("token", {"address": address, "market_cap": market_cap})  # milestones offline too
        return Reading(is_live=is_live, viewers=viewers, comments=new,
                       market_cap=float(market_cap) if market_cap is not None else None,
                       previous_market_cap=float(previous) if isinstance(previous, int | float) and previous else None,
                       errors=errors)

    def beat(self, run: Run) -> Decision:
        reading = self.read(run)
        decision, why = decide(reading, self.cfg)
        action = self._act(run, decision, reading)
        self.beats += 1
        hold = run.machine.metrics.hold
        parts = [f"Heartbeat: not live ({hold.reason if hold else run.machine.state.value})."]
        if reading.is_live:
            parts.append("The platform says this agent IS live, yet this appliance is not streaming: "
                         "is another copy running with the same credentials?")
        if reading.comments:
            shown = "; ".join(f"{clean_name(c.username, 24)}: {clean_text(c.text, 80)}" for c in reading.comments[-3:])
            parts.append(f"{len(reading.comments)} new comment(s) — {shown}.")
        else:
            parts.append("No new comments.")
        if reading.market_cap is not None:
            parts.append(f"Market cap {reading.market_cap:,.0f}.")
        if reading.errors:
            parts.append("Not read: " + "; ".join(reading.errors) + ".")
        parts.append(f"Decision: {decision.value} — {why}. {action}")
        self.notifier.notify("heartbeat", " ".join(parts), decision=decision.value, comments=len(reading.comments),
                             market_cap=reading.market_cap, platform_live=reading.is_live)
        with self.store.lock:
            milestones = dict(self.store.data.milestones)
            if reading.market_cap is not None:
                milestones["heartbeat_market_cap"] = reading.market_cap
            self.store.update(last_heartbeat=self.clock(), milestones=milestones)
        return decision

    def _act(self, run: Run, decision: Decision, reading: Reading) -> str:
        hold = run.machine.metrics.hold
        standby = hold is not None and hold.reason == "standby"
        if decision is Decision.STREAM:
            if standby and self.cfg.go_live:
                run.go_live_requested.set()
                return "Going live now (live.heartbeat.go_live)."
            if standby:
                return "Go live with `appliance go-live` (or set live.heartbeat.go_live: true)."
            return "Streaming resumes when the hold ends" + (f" ({hold.line()})." if hold else ".")
        if decision is Decision.CHAT:
            if run.chat is None or not self.cfg.offline_reply:
                return "Not answered (no offline_reply)."
            names = ", ".join(dict.fromkeys(clean_name(c.username, 24) for c in reading.comments[-3:]))
            sent = run.chat.post(self.cfg.offline_reply.format(names=names), trusted=False)
            return "Answered in chat." if sent.ok else f"The chat answer did not go out: {sent.reason}."
        return "Nothing to do."
