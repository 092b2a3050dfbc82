"""The chat loop: read the agent's own chat, answer new messages, never let it go silent.

Polls ``stream/comments`` for the agent's ``userDbId`` (every ``chat.poll_s`` while chat is
active, ``chat.quiet_poll_s`` when it is quiet), handles only messages it has not seen (ids
and the newest timestamp persist in the state folder, so a restart answers nothing twice),
skips the agent's own messages, and asks a :class:`Responder` for replies. Replies and the
proactive line after a quiet minute go out through ``stream/chat/send``; everything is
sanitized and bounded (replies per poll, reply length).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..config import ChatConfig
from ..errors import RetakeConflict, RetakeError, RetakeUnauthorized
from ..retake.client import RetakeClient
from ..retake.models import Comment
from ..sanitize import clean_text
from ..state import StateStore
from .brains.base import ChatContext, Responder

log = logging.getLogger("appliance.chat")
MAX_REPLIES_PER_POLL = 5


def comment_epoch(comment: Comment) -> float | None:
    return comment.timestamp.timestamp() if comment.timestamp else None


class ChatLoop:
    """One thread: poll, answer, keep chat alive. ``stop_event`` ends it at once."""

    def __init__(self, client: RetakeClient, cfg: ChatConfig, *, user_db_id: str, agent_name: str,
                 state: StateStore, responder: Responder, stop_event: threading.Event,
                 on_message: Callable[[Comment], None] = lambda c: None,
                 on_fatal: Callable[[RetakeError], None] = lambda e: None,
                 on_conflict: Callable[[], None] = lambda: None,
                 on_sent: Callable[[str], None] = lambda text: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.cfg, self.state = client, cfg, state
        self.user_db_id, self.agent_name = user_db_id, agent_name
        self.responder, self.stop_event = responder, stop_event
        self.on_message, self.on_fatal, self.on_conflict = on_message, on_fatal, on_conflict
        self.on_sent = on_sent
        self.clock = clock
        self.ctx = ChatContext(agent_name=agent_name, started_at=clock(), clock=clock,
                               ideas=list(cfg.stream_ideas))
        self.last_activity = clock()
        self.last_poll_ok: float | None = None
        self.lag_s = 0.0
        self.sent_texts: list[str] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- sending ---------------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Post one message into our own chat; False (logged) when it could not be sent."""
        message = clean_text(text, self.cfg.max_reply_chars)
        if not message:
            return False
        with self._lock:
            for attempt in (1, 2):
                try:
                    self.client.chat_send(message, self.user_db_id)
                    break
                except RetakeConflict:
                    if attempt == 2:
                        return False
                    self.on_conflict()
                except RetakeUnauthorized as exc:
                    self.on_fatal(exc)
                    return False
                except RetakeError as exc:
                    log.warning("chat send failed: %s", exc.message)
                    return False
            self.sent_texts = (self.sent_texts + [message])[-50:]
            self.state.data.messages_out += 1
            self.last_activity = self.clock()
        log.info("chat > %s", message)
        self.on_sent(message)
        return True

    # --- reading ---------------------------------------------------------------------------

    def _is_own(self, c: Comment) -> bool:
        return (c.user_id == self.user_db_id or c.username == self.agent_name
                or c.text in self.sent_texts)

    def _is_new(self, c: Comment) -> bool:
        if self.state.seen(c.id):
            return False
        floor = self.state.data.newest_comment_ts
        ts = comment_epoch(c)
        return floor is None or ts is None or ts >= floor

    def poll_once(self) -> int:
        """One poll; returns how many new viewer messages were handled."""
        comments = self.client.comments(self.user_db_id, limit=self.cfg.limit)
        now = time.time()
        self.last_poll_ok = self.clock()
        if not self.state.data.chat_baselined:
            # first start ever: what was said before we existed is history, not a question
            for c in comments:
                self.state.mark_seen(c.id, comment_epoch(c))
            self.state.update(chat_baselined=True)
            return 0
        fresh = [c for c in comments if self._is_new(c)]
        handled = replies = 0
        for c in fresh:
            self.state.mark_seen(c.id, comment_epoch(c))
            if self._is_own(c):
                continue
            handled += 1
            self.state.data.messages_in += 1
            self.ctx.known_viewers[c.username] = self.ctx.known_viewers.get(c.username, 0) + 1
            if len(self.ctx.known_viewers) > 5000:
                self.ctx.known_viewers.pop(next(iter(self.ctx.known_viewers)))
            ts = comment_epoch(c)
            if ts is not None:
                self.lag_s = max(0.0, now - ts)
            log.info("chat < %s: %s", c.username, c.text)
            self.on_message(c)
            if replies < MAX_REPLIES_PER_POLL:
                answer = self.responder.reply(c, self.ctx)
                if answer and self.send(answer):
                    replies += 1
        if fresh:
            self.last_activity = self.clock()
            self.state.save()
        return handled

    def keep_alive(self) -> None:
        if self.clock() - self.last_activity >= self.cfg.quiet_after_s:
            line = self.responder.proactive(self.ctx)
            if line:
                self.send(line)
            self.last_activity = self.clock()

    def run(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            try:
                handled = self.poll_once()
                failures = 0
                self.keep_alive()
            except RetakeUnauthorized as exc:
                self.on_fatal(exc)
                return
            except RetakeConflict:
                self.on_conflict()
                handled = 0
            except RetakeError as exc:
                failures += 1
                handled = 0
                log.warning("chat poll failed (%d in a row): %s", failures, exc.message)
            except Exception:  # noqa: BLE001 - the loop must outlive one bad answer
                failures += 1
                handled = 0
                log.exception("chat poll crashed; going on")
            quiet = self.clock() - self.last_activity > self.cfg.quiet_after_s / 2
            delay = self.cfg.quiet_poll_s if (quiet and not handled) else self.cfg.poll_s
            self.stop_event.wait(min(delay * (2 ** min(failures, 3)), 30.0))

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="chat", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread:
            self._thread.join(timeout)
