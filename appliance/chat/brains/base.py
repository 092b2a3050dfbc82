"""What a brain is (:class:`Brain`), what it answers (a :class:`Turn` of one or more viewer
messages) and what it may know about the stream (:class:`ChatContext`).

A turn is one reply's worth of chat: usually one message; when chat bursts, :func:`plan_turns`
coalesces — every new viewer of the burst greeted in one line, every tip thanked in one line,
the same ``!command`` from five viewers answered once, the rest read together.

Viewer text in a turn is already moderated (links stripped, length capped) and names are already
neutralised (:mod:`..moderation`); it is still untrusted and a brain that builds a prompt must
fence it (see :mod:`.llm`).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...retake.normalize import Comment
from ..memory import Viewer, ViewerMemory

COMMAND = re.compile(r"^!([a-z0-9_]{1,20})\b")
SOCIAL_KINDS = ("tip", "trade", "follow")


@dataclass(frozen=True)
class Incoming:
    """One viewer message (or tip, trade, follow) waiting for an answer."""

    comment: Comment
    name: str                 # neutralised display name
    text: str                 # moderated text
    received: float           # on the chat loop's clock
    viewer: Viewer | None = None
    source: str = "poll"

    @property
    def id(self) -> str:
        return self.comment.id

    @property
    def kind(self) -> str:
        return self.comment.kind if self.comment.kind in SOCIAL_KINDS else "message"

    @property
    def command(self) -> str:
        match = COMMAND.match(self.text.strip().lower())
        return match.group(1) if match and self.kind == "message" else ""

    def as_dict(self) -> dict[str, Any]:
        """The message as outside brains and the event feed see it."""
        viewer = self.viewer
        return {"id": self.id, "kind": self.kind, "text": self.text, "amount": self.comment.amount,
                "seq": self.comment.seq,
                "timestamp": self.comment.timestamp.isoformat() if self.comment.timestamp else None,
                "user": {"name": self.name, "user_id": self.comment.user_id,
                         "wallet": self.comment.wallet_address,
                         "new": bool(viewer and viewer.new), "returning": bool(viewer and viewer.returning),
                         "facts": viewer.facts() if viewer else []}}


@dataclass(frozen=True)
class Turn:
    """What one reply answers: ``kind`` is greeting, command, tip, trade, follow or message."""

    kind: str
    items: tuple[Incoming, ...]
    command: str = ""

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)

    @property
    def names(self) -> list[str]:
        seen: dict[str, None] = {}
        for item in self.items:
            seen.setdefault(item.name, None)
        return list(seen)


def plan_turns(items: list[Incoming], *, singles: int = 2) -> list[Turn]:
    """Coalesce a batch into turns, in the order each group first appears. Up to ``singles``
    plain messages are answered one by one; more are read together in one turn."""
    groups: dict[tuple[str, str], list[Incoming]] = {}
    for item in items:
        if item.kind in SOCIAL_KINDS:
            key = (item.kind, "")
        elif item.command:
            key = ("command", item.command)
        elif item.viewer is not None and item.viewer.first_in_session:
            key = ("greeting", "")
        else:
            key = ("message", "")
        groups.setdefault(key, []).append(item)
    turns: list[Turn] = []
    for (kind, command), group in groups.items():
        if kind == "message" and len(group) <= singles:
            turns.extend(Turn("message", (item,)) for item in group)
        else:
            turns.append(Turn(kind, tuple(group), command))
    return turns


@dataclass
class ChatContext:
    """What a brain may know: identity, uptime, ideas, recent chat, viewer memory, its deadline."""

    agent_name: str
    started_at: float
    clock: Callable[[], float] = time.monotonic
    ideas: list[str] = field(default_factory=list)
    description: str = ""
    viewers: Callable[[], int | None] = lambda: None
    recent: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=50))  # (name, text)
    memory: ViewerMemory | None = None
    deadline: float | None = None  # on ``clock``: answer by then, or the loop lets the turn go
    max_reply_chars: int = 280
    express: Callable[[str], object] = lambda mood: None   # the avatar's face for this reply (a "mood" event)
    direction: str = ""  # the builder's answer to "which direction?" (live/direction.py), cleaned and bounded

    def uptime(self) -> str:
        seconds = int(self.clock() - self.started_at)
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"

    def remaining(self, cap: float) -> float:
        """Seconds left before the deadline, at most ``cap``."""
        if self.deadline is None:
            return cap
        return max(0.0, min(cap, self.deadline - self.clock()))

    def payload(self, turn: Turn) -> dict[str, Any]:
        """The turn as JSON for an outside brain (command, webhook): no secret, ever."""
        return {"type": "turn", "kind": turn.kind, "command": turn.command, "agent": self.agent_name,
                "messages": [item.as_dict() for item in turn.items],
                "context": {"uptime": self.uptime(), "viewers": self.viewers(), "ideas": self.ideas,
                            "direction": self.direction,
                            "recent": [{"name": n, "text": t} for n, t in list(self.recent)[-12:]]}}


class Brain(Protocol):
    """Turns a :class:`Turn` into one reply (None: no reply) and fills silence."""

    name: str

    def respond(self, turn: Turn, ctx: ChatContext) -> str | None: ...

    def proactive(self, ctx: ChatContext) -> str | None: ...


Responder = Brain  # the old name
