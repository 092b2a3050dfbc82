"""What a brain (responder) is, and what it may know about the stream (:class:`ChatContext`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ...retake.models import Comment


@dataclass
class ChatContext:
    """What a responder may know: names seen, uptime, the agent's identity and ideas."""

    agent_name: str
    started_at: float
    clock: Callable[[], float] = time.monotonic
    known_viewers: dict[str, int] = field(default_factory=dict)  # name -> messages seen
    ideas: list[str] = field(default_factory=list)

    def uptime(self) -> str:
        seconds = int(self.clock() - self.started_at)
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


class Responder(Protocol):
    """Turns a viewer message into a reply; richer ones (an LLM, a webhook) plug in here."""

    def reply(self, message: Comment, ctx: ChatContext) -> str | None: ...

    def proactive(self, ctx: ChatContext) -> str | None: ...
