"""The external brain: replies come from outside — an agent reading ``GET /events`` and answering
with ``POST /reply``. It waits up to ``chat.external.cover_after_s`` for the messages of a turn
to be answered that way; whatever is still unanswered then, the host brain answers, so chat is
never left hanging when the outside agent is quiet.
"""

from __future__ import annotations

import threading
from collections import deque

from .base import Brain, ChatContext, Turn
from .settings import ExternalBrainConfig


class ExternalBrain:
    name = "external"

    def __init__(self, cfg: ExternalBrainConfig, *, fallback: Brain) -> None:
        self.cfg, self.fallback = cfg, fallback
        self._answered: deque[str] = deque(maxlen=5000)
        self._cond = threading.Condition()
        self.covered = 0

    def answered(self, ids: list[str] | tuple[str, ...]) -> None:
        """The loop tells the brain that these messages were answered from outside."""
        with self._cond:
            self._answered.extend(ids)
            self._cond.notify_all()

    def respond(self, turn: Turn, ctx: ChatContext) -> str | None:
        wait = ctx.remaining(self.cfg.cover_after_s)
        with self._cond:
            self._cond.wait_for(lambda: all(i in self._answered for i in turn.ids), timeout=wait)
            left = tuple(item for item in turn.items if item.id not in self._answered)
        if not left:
            return None
        self.covered += 1
        return self.fallback.respond(Turn(turn.kind, left, turn.command), ctx)

    def proactive(self, ctx: ChatContext) -> str | None:
        return self.fallback.proactive(ctx)
