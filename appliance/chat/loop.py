"""The chat loop: read the agent's chat in real time, answer every message exactly once, never
let it go silent.

Threads (all end when ``stop_event`` is set):

* ``chat-socket`` (:class:`~.sources.SocketSource`): Socket.IO messages, tips, follows;
* ``chat-poll``: ``stream/comments`` — the catch-up after every gap (start, socket rejoin,
  outage) paging back to the cursor, and the fallback while the socket is down (every
  ``chat.poll_s`` while chat is active, ``chat.quiet_poll_s`` when quiet; ``chat.socket_poll_s``
  as a safety net while the socket is up);
* ``chat-seq`` (:class:`~.sources.Sequencer`): one ordered, de-duplicated stream; each new comment
  is moderated, journaled and remembered in one SQLite transaction, published on the event bus,
  shown, and queued for an answer — reading never waits for a brain;
* ``chat-reply``: the bounded worker queue. It takes everything waiting, lets go of what is past
  ``chat.reply_deadline_s``, coalesces a burst into turns (:func:`~.brains.base.plan_turns`),
  asks the brain (each with a deadline), and sends through the :class:`~.outbox.Outbox` (filter,
  global rate cap, journal, routes). When chat is quiet for ``chat.quiet_after_s`` it says a
  proactive line.

Exactly once: see :mod:`.journal`. Before ``stream/start`` the lifecycle calls :meth:`baseline`
(one poll, or the persisted cursor), so every message after going live is answered, the first
viewer's included. Our own messages are recognised by platform user id, wallet and the ids of
messages we sent — not only by name and text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import (
    ApplianceError,
    NotFoundError,
    RetakeConflict,
    RetakeError,
    RetakeUnauthorized,
)
from ..core.files import StateLayout
from ..core.sanitize import clean_text
from ..core.store import StateStore
from ..retake.client import RetakeClient
from ..retake.normalize import Comment
from .brains import Brain, ChatContext, Incoming, Turn, make_brain, plan_turns
from .brains.external import ExternalBrain
from .brains.llm import default_persona
from .journal import Journal
from .memory import ChatDb, ViewerMemory, viewer_key
from .moderation import Moderator, OutgoingFilter
from .outbox import Delivery, Outbox, RateLimiter
from .settings import ChatConfig
from .sources import CHAT_KINDS, Pager, Sequencer, SocketSource, comment_epoch, socket_origin

log = logging.getLogger("appliance.chat")
MAX_REPLIES_PER_POLL = 5  # kept for callers of the old name; the global rate cap is the real bound
IDLE_TICK_S = 0.5
WARNING_REPEAT_S = 600.0   # the same platform warning is published once in this long
WARNINGS_PER_HOUR = 10


def is_warning(kind: str) -> bool:
    """A platform notice by its type: ``warning``, ``shutdown_warning``, ``shutdown`` ... (the
    reference mentions a shutdown warning, not its channel; see docs/chat.md)."""
    return "warn" in kind or "shutdown" in kind


@dataclass
class ChatServices:
    """What the composition root (``app.py``) plugs into the chat: all optional."""

    publish: Callable[[str, dict[str, Any]], object] | None = None   # EventBus.publish
    # "voice", "caption": (text, priority)
    outputs: Mapping[str, Callable[[str, str], None]] = field(default_factory=dict)
    secrets: Callable[[], Iterable[str]] = lambda: ()   # values that must never leave or reach a prompt
    viewers: Callable[[], int | None] = lambda: None    # the platform's viewer count
    socket_url: str | None = None                        # default: the API's origin
    db_path: Path | None = None                          # default: StateLayout.memory_db
    environ: Mapping[str, str] | None = None             # where API keys are read: the secret store (app.py)
    brain: Brain | None = None                           # default: the one chat.brain names
    token_address: Callable[[], str | None] = lambda: None  # the agent's token, once known (trades_ room)


@dataclass
class ChatStats:
    handled: int = 0       # viewer messages read (not our own, not blocked)
    answered: int = 0      # replies sent
    proactive: int = 0
    limited: int = 0       # over a viewer's rate: read, not answered
    blocked: int = 0
    expired: int = 0       # past the reply deadline
    stale: int = 0         # caught up too old to answer
    warnings: int = 0      # platform notices (a shutdown warning): published, never answered
    ignored: int = 0       # platform events of other types (not chat)


class ChatLoop:
    """The agent's chat: in (socket + polling), brain, out (outbox). See the module docstring."""

    def __init__(self, client: RetakeClient, cfg: ChatConfig, *, user_db_id: str, agent_name: str,
                 state: StateStore, stop_event: threading.Event, responder: Brain | None = None,
                 agent_wallet: str = "", agent_description: str = "",
                 services: ChatServices | None = None,
                 secrets: Callable[[], Iterable[str]] = lambda: (),
                 on_message: Callable[[Comment], None] = lambda c: None,
                 on_fatal: Callable[[RetakeError], None] = lambda e: None,
                 on_conflict: Callable[[], None] = lambda: None,
                 on_sent: Callable[[str], None] = lambda text: None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        services = services or ChatServices()
        self.client, self.cfg, self.state = client, cfg, state
        self.user_db_id, self.agent_name, self.agent_wallet = user_db_id, agent_name, agent_wallet
        self.stop_event, self.clock, self.wall = stop_event, clock, wall
        self.on_message, self.on_fatal, self.on_conflict = on_message, on_fatal, on_conflict
        self.services = services
        self.publish = services.publish or (lambda kind, data: None)
        self.db = ChatDb(services.db_path or StateLayout(state.path.parent).memory_db, clock=wall)
        self.memory = ViewerMemory(self.db, cfg.memory, session_gap_s=cfg.memory.session_gap_s)
        self.journal = Journal(self.db, max_rows=cfg.memory.journal_rows)
        self._adopt_legacy_cursor()
        if cfg.proactive.no_repeat_s is not None:
            log.warning("chat.proactive.no_repeat_s is no longer used: a proactive line is never said twice now "
                        "(chat.proactive.rest_streams rests phrases across streams); remove the key")
        all_secrets = lambda: [*secrets(), *services.secrets()]  # noqa: E731
        self.moderator = Moderator(cfg.moderation, agent_name=agent_name, clock=clock)
        self.guard = OutgoingFilter(all_secrets, max_chars=cfg.max_reply_chars, links=cfg.moderation.links)
        self.ctx = ChatContext(agent_name=agent_name, started_at=clock(), clock=clock, ideas=list(cfg.stream_ideas),
                               description=agent_description, viewers=services.viewers, memory=self.memory,
                               max_reply_chars=cfg.max_reply_chars,
                               express=lambda mood: self.publish("mood", {"mood": mood}))
        self.brain: Brain = responder or services.brain or make_brain(
            cfg.brain, proactive=cfg.proactive, persona=default_persona(agent_name, agent_description),
            memory=self.memory, scrub=self.guard.scrub, environ=services.environ)
        self.limiter = RateLimiter(cfg.max_messages_per_minute, cfg.burst, clock=clock)
        self.outbox = Outbox(client, user_db_id=user_db_id, journal=self.journal, guard=self.guard,
                             limiter=self.limiter, stop_event=stop_event, outputs=services.outputs,
                             publish=self.publish, on_sent=self._sent(on_sent), on_fatal=on_fatal,
                             on_conflict=on_conflict)
        self.sequencer = Sequencer(deliver=self._ingest, known=self.journal.known, seen=self._seen,
                                   clock=clock, wall=wall)
        self.pager = Pager(client, user_db_id, limit=cfg.limit, max_pages=cfg.catch_up_pages,
                           known=lambda c: self.journal.recognize(c, "poll", record=False) is not None)
        self.socket: SocketSource | None = None  # made by start(): its library loads off the way to live
        self.stats = ChatStats()
        self.last_activity = clock()
        self.last_poll_ok: float | None = None
        self.lag_s = 0.0
        self._queue: deque[Incoming] = deque()
        self._queue_cond = threading.Condition()
        self._catch_up = threading.Event()
        self._baseline_floor: float | None = None
        self._last_viewers: int | None = None
        self._warnings: deque[tuple[float, str]] = deque()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False

    # --- cursor --------------------------------------------------------------------------------

    def _adopt_legacy_cursor(self) -> None:
        data = self.state.data
        if not self.journal.baselined and getattr(data, "chat_baselined", False):
            self.journal.import_legacy(list(getattr(data, "seen_comment_ids", []) or []))

    def baseline(self) -> None:
        """Called before ``stream/start``: take the chat's baseline now (one poll) unless the
        journal already has a cursor, so what is said after the stream starts is answered."""
        if self.journal.baselined:
            return
        self._baseline_floor = self.wall()
        try:
            history = self.pager.latest()
        except RetakeError as exc:
            log.warning("chat baseline before stream/start failed (%s): messages older than now "
                        "will count as history", exc.message)
            return
        count = self.journal.baseline(history)
        log.info("chat baseline: %d earlier message(s) are history, not questions", count)

    # --- in ------------------------------------------------------------------------------------

    def _is_own(self, c: Comment) -> bool:
        if self.journal.is_ours(c.id):
            return True
        if c.user_id and c.user_id == self.user_db_id:
            return True
        if c.wallet_address and self.agent_wallet and c.wallet_address == self.agent_wallet:
            return True
        # last resort (a shape with neither id nor wallet): our name and a text we sent
        return c.username.casefold() == self.agent_name.casefold() and c.text in self.journal.recent_texts()

    def _seen(self, comment: Comment, source: str) -> bool:
        """Already read, under this id or another (its twin from the other path: when that match
        is certain, the two payloads' sender ids are one viewer's, :meth:`~.memory.ViewerMemory.link`)."""
        match, certain = self.journal.match(comment, source)
        if match is None:
            return False
        first = self.journal.viewer_of(match)
        if certain and first and comment.kind in CHAT_KINDS and not self._is_own(comment):
            self.memory.link(first, viewer_key(comment))
        return True

    def _ingest(self, comment: Comment, source: str) -> None:
        """One new comment, in order: a platform notice / not chat / own / blocked / read;
        remembered, published, queued."""
        if is_warning(comment.kind):
            self._platform_warning(comment, source)
            return
        if comment.kind not in CHAT_KINDS:
            self.stats.ignored += 1
            self.journal.receive(comment, state="ignored", source=source)
            log.info("chat: a %s event is not chat; not answered", comment.kind)
            return
        if self._is_own(comment):
            self.journal.receive(comment, state="own", source=source)
            self.journal.match_own(comment)
            return
        key = self.memory.key(comment)
        verdict = self.moderator.inbound(comment, key)
        if verdict.action == "blocked":
            self.stats.blocked += 1
            self.journal.receive(comment, state="blocked", source=source, viewer=key)
            log.info("chat: ignored a message (%s)", verdict.reason)
            return
        ts = comment_epoch(comment)
        stale = ts is not None and self.wall() - ts > self.cfg.max_age_s
        answer = verdict.action == "ok" and not stale
        with self.db.tx():
            if not self.journal.receive(comment, state="new" if answer else "unanswered", source=source,
                                        viewer=key):
                return
            viewer = self.memory.observe(comment)
        item = Incoming(comment, verdict.name, verdict.text, self.clock(), viewer, source)
        self.stats.handled += 1
        self.stats.stale += stale
        self.stats.limited += verdict.action == "limited"
        self.state.data.messages_in += 1
        if ts is not None:
            self.lag_s = max(0.0, self.wall() - ts)
        self.last_activity = self.clock()
        kind = item.kind if item.kind in ("tip", "trade", "follow") else "chat"
        self.publish(kind, {**item.as_dict(), "source": source, "answer": answer, "late": stale})
        if item.kind == "message":
            self.ctx.recent.append((item.name, item.text))
        log.info("chat < %s: %s", item.name, item.text)
        self.on_message(comment.model_copy(update={"username": item.name, "text": item.text}))
        if answer:
            self._enqueue(item)

    def _platform_warning(self, comment: Comment, source: str) -> None:
        """A notice from the platform (a shutdown warning): never answered, never shown or read
        aloud as a viewer's line; published as ``warning`` for the notifier. The same text is
        published once per :data:`WARNING_REPEAT_S`, at most :data:`WARNINGS_PER_HOUR` an hour (a
        forged one costs a notification, never more)."""
        if not self.journal.receive(comment, state="platform", source=source):
            return
        self.stats.warnings += 1
        text = clean_text(comment.text, 500)
        log.warning("platform warning (%s): %s", source, text)
        now = self.clock()
        while self._warnings and now - self._warnings[0][0] > 3600:
            self._warnings.popleft()
        if len(self._warnings) >= WARNINGS_PER_HOUR or any(
                t == text and now - at < WARNING_REPEAT_S for at, t in self._warnings):
            return
        self._warnings.append((now, text))
        viewer = comment.user_id or comment.wallet_address  # a notice has no sender; name one that has
        self.publish("warning", {"text": text, "source": source, "id": comment.id,
                                 "sender": comment.username if viewer else "platform"})

    def _socket_event(self, kind: str, data: dict[str, Any]) -> None:
        """``session_started``, ``pinned``, ``newtrade``: published as they are (not chat)."""
        self.publish(kind, data)

    def _enqueue(self, item: Incoming) -> None:
        with self._queue_cond:
            if len(self._queue) >= self.cfg.queue_max:
                dropped = self._queue.popleft()
                self.journal.finish([dropped.id])
                self.stats.expired += 1
                log.warning("chat reply queue full (%d): the oldest waiting message goes unanswered",
                            self.cfg.queue_max)
            self._queue.append(item)
            self._queue_cond.notify_all()

    def _socket_gap(self) -> None:
        self.sequencer.hold()
        self._catch_up.set()

    def _poll(self) -> int:
        """One catch-up poll (pages back to the cursor) offered to the sequencer."""
        if not self.journal.baselined:
            page = self.pager.latest()
            floor = self._baseline_floor
            # a time to the second (the skill's example) may read up to 1 s early: in doubt, not history
            history = [c for c in page if floor is None or (comment_epoch(c) or 0) < floor - 1.0]
            self.journal.baseline(history)
            fresh = [c for c in page if c not in history]
        else:
            fresh = self.pager.fetch()
        new = self.sequencer.offer(fresh, "poll")
        self.sequencer.release_hold()
        self.last_poll_ok = self.clock()
        return new

    # --- answering -----------------------------------------------------------------------------

    def _drain(self, timeout: float) -> list[Incoming]:
        with self._queue_cond:
            if not self._queue and timeout > 0:
                self._queue_cond.wait(timeout)
            items = list(self._queue)
            self._queue.clear()
        return items

    def _answer(self, items: list[Incoming]) -> None:
        now = self.clock()
        fresh = []
        for item in items:
            if self.journal.state_of(item.id) != "new":
                continue  # answered meanwhile (POST /reply)
            if now - item.received > self.cfg.reply_deadline_s:
                self.journal.finish([item.id])
                self.stats.expired += 1
            else:
                fresh.append(item)
        for turn in plan_turns(fresh):
            if self.stop_event.is_set():
                return
            self._answer_turn(turn)

    def _answer_turn(self, turn: Turn) -> None:
        deadline = min(item.received for item in turn.items) + self.cfg.reply_deadline_s
        self.ctx.deadline = deadline
        self.publish("answering", {"ids": list(turn.ids), "kind": turn.kind, "brain": self.brain.name,
                                   "names": turn.names})
        try:
            text = self.brain.respond(turn, self.ctx)
        except Exception:
            log.exception("brain %s failed; no reply to this turn", self.brain.name)
            text = None
        if not text:
            self.journal.finish(turn.ids)
            return
        result = self.outbox.deliver(text, to_ids=turn.ids, routes=self.cfg.reply_routes, brain=self.brain.name,
                                     wait_s=max(0.0, deadline - self.clock()))
        fallback = getattr(self.brain, "fallback", None)
        if result.refused and fallback is not None:
            # the brain said something that must not leave (a prompt injection that worked): the host answers
            text = fallback.respond(turn, self.ctx)
            if text:
                self.journal.reopen(turn.ids)
                result = self.outbox.deliver(text, to_ids=turn.ids, routes=self.cfg.reply_routes, brain=fallback.name,
                                             wait_s=max(0.0, deadline - self.clock()))
        if result.ok:
            self.stats.answered += 1
            self.ctx.recent.append((self.agent_name, result.text))

    def _sent(self, on_sent: Callable[[str], None]) -> Callable[[str], None]:
        def sent(text: str) -> None:
            self.state.data.messages_out += 1
            self.last_activity = self.clock()
            on_sent(text)
        return sent

    def keep_alive(self) -> None:
        """A proactive line when chat has been quiet for ``chat.quiet_after_s``."""
        if self.clock() - self.last_activity < self.cfg.quiet_after_s:
            return
        self.last_activity = self.clock()
        self.ctx.deadline = None  # a proactive line has the brain's own deadline, not a turn's
        line = self.brain.proactive(self.ctx)
        if line:
            result = self.outbox.deliver(line, routes=self.cfg.proactive.routes, brain="proactive", wait_s=0)
            self.stats.proactive += result.ok
            self.last_activity = self.clock()

    def _tick(self) -> None:
        if self.socket is not None:
            self.socket.watch_token(self.services.token_address())
        self.keep_alive()
        viewers = self.services.viewers()
        if viewers is not None and viewers != self._last_viewers:
            self._last_viewers = viewers
            self.publish("viewers", {"count": viewers})

    # --- the outside world --------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Post one line of the operator's (``/chat``): filtered and rate-capped."""
        return self.post(text).ok

    def post(self, text: str, *, trusted: bool = True, wait_s: float = 3.0) -> Delivery:
        """One line into our chat (the opening line, the operator's, the offline reply); the
        Delivery says whether it went out and why not (see :meth:`retry`)."""
        return self.outbox.deliver(text, routes=("chat",), brain="operator", trusted=trusted, wait_s=wait_s)

    def retry(self, failed: Delivery, *, wait_s: float = 3.0) -> Delivery:
        """:meth:`post`'s line once more, never as a second copy (:meth:`.outbox.Outbox.retry`)."""
        return self.outbox.retry(failed, wait_s=wait_s)

    def reply_to(self, message_id: str, text: str, routes: Iterable[str] | None = None) -> dict[str, Any]:
        """``POST /reply``: answer a given message (from the event feed) now."""
        message_id = self.journal.canonical(message_id)  # either path's id of one message
        if self.journal.comment(message_id) is None:
            raise NotFoundError(f"no message {message_id!r} in this chat's journal",
                                fix="use the id of a chat event from GET /events")
        result: Delivery = self.outbox.deliver(text, to_ids=[message_id],
                                               routes=tuple(routes or self.cfg.reply_routes),
                                               brain="external", wait_s=3.0)
        if not result.ok:
            raise ApplianceError(f"not sent: {result.reason}")
        if isinstance(self.brain, ExternalBrain):
            self.brain.answered([message_id])
        self.stats.answered += 1
        return {"sent": True, "answered": message_id, "message_id": result.message_id, "text": result.text}

    # --- running -------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """One synchronous round (tests, and the loop before its threads run): poll, handle in
        order, answer. Returns how many new viewer messages were handled."""
        before = self.stats.handled
        self._poll()
        self.sequencer.release_due(force=True)
        if not self._started:
            self._answer(self._drain(0))
        return self.stats.handled - before

    def _resume(self) -> None:
        """After a restart: answer what was read but not answered, in order."""
        reopened = self.journal.open_comments()
        for comment, _received in reopened:
            key = self.memory.key(comment)
            item = Incoming(comment, self.moderator.display_name(comment), comment.text, self.clock(),
                            self.memory.get(key), "journal")
            self._enqueue(item)
        if reopened:
            log.info("chat: %d message(s) read before the restart are answered now", len(reopened))

    def _poll_loop(self) -> None:
        failures = 0
        self._catch_up.set()
        while not self.stop_event.is_set():
            self._catch_up.clear()
            try:
                history_from = self.wall()
                self._poll()
                failures = 0
                if self.journal.pending() and self.sequencer.wait_idle(2.0):
                    self.outbox.recover(max_age_s=self.cfg.reply_deadline_s, history_from=history_from)
            except RetakeUnauthorized as exc:
                self.on_fatal(exc)
                return
            except RetakeConflict:
                self.on_conflict()
            except RetakeError as exc:
                failures += 1
                log.warning("chat poll failed (%d in a row): %s", failures, exc.message)
            except Exception:
                failures += 1
                log.exception("chat poll crashed; going on")
            if self.socket is not None and self.socket.confirmed.is_set() and not failures:
                delay = self.cfg.socket_poll_s  # the rooms deliver: polling is the safety net
            elif self.clock() - self.last_activity > self.cfg.quiet_after_s / 2:
                delay = self.cfg.quiet_poll_s
            else:
                delay = self.cfg.poll_s
            delay = min(delay * (2 ** min(failures, 3)), 30.0)
            deadline = self.clock() + delay
            while not self.stop_event.is_set() and not self._catch_up.is_set() and self.clock() < deadline:
                self._catch_up.wait(min(0.25, max(0.0, deadline - self.clock())))

    def _reply_loop(self) -> None:
        while not self.stop_event.is_set():
            items = self._drain(IDLE_TICK_S)
            try:
                if items:
                    self._answer(items)
                self._tick()
            except Exception:
                log.exception("chat reply worker: going on")
            self._save_counts()

    def _save_counts(self) -> None:
        now = self.clock()
        if now - getattr(self, "_counts_saved", 0.0) > 5.0:
            self._counts_saved = now
            try:
                self.state.save()
            except OSError as exc:
                log.warning("could not save chat counters: %s", exc)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._resume()
        for name, target in (("chat-poll", self._poll_loop), ("chat-seq", lambda: self.sequencer.run(self.stop_event)),
                             ("chat-reply", self._reply_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.cfg.realtime:
            self.socket = SocketSource(self.services.socket_url or socket_origin(self.client.base_url),
                                       self.user_db_id, on_comment=lambda c: self.sequencer.offer([c], "socket"),
                                       on_gap=self._socket_gap, on_event=self._socket_event)
            self.socket.start()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the threads (after ``stop_event``), then close the socket and the database."""
        deadline = time.monotonic() + timeout
        if self.socket is not None and self.stop_event.is_set():
            self.socket.stop()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.stop_event.is_set() and not self._closed and not any(t.is_alive() for t in self._threads):
            self._closed = True
            close = getattr(self.brain, "close", None)
            if callable(close):
                close()
            self.state.save()
            self.db.close()
