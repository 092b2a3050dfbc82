"""One chat message seen by both paths under two ids: how the chat recognises its twin.

The same message can reach us twice: over Socket.IO (the reference's ``message`` payload has no
``_id``; other clients saw a numeric ``chat_event_id``) and in a ``stream/comments`` page (the
documented shape's ``_id``, an ObjectId). In the ``observed`` shapes both carry the
``chat_event_id`` and the ids agree; in the ``documented`` and ``comment_created_at`` shapes they
do not, and nothing but the message itself links the two.

:func:`twins` decides, for two comments with different ids:

1. both carry a numeric ``chat_event_id`` (``seq``): equal seq, one message; different, two;
2. otherwise only a socket comment and a page comment can be twins (one path never shows one
   message under two ids), with the same text, no sender id that disagrees (wallet, platform
   user id, fid — whichever both carry), and timestamps at most :data:`WINDOW_S` apart; when
   one side has no timestamp, arrival times at most :data:`ARRIVAL_WINDOW_S` apart and a sender
   id both carry and agree on.

The journal matches one to one (a comment already paired is not paired again), nearest in time
first, so a viewer who says "gm" twice is answered twice, and two viewers saying "lol" in the
same second stay two.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from ..retake.normalize import Comment

WINDOW_S = 5.0            # one message's timestamp as the socket and the page show it: at most this apart
ARRIVAL_WINDOW_S = 120.0  # without a timestamp: when the two paths delivered it (a few poll intervals)
SOCKET = "socket"


def family(source: str) -> str:
    """``socket`` for Socket.IO, ``page`` for everything read from ``stream/comments``."""
    return SOCKET if source == SOCKET else "page"


def fingerprint(text: str) -> str:
    """The text's digest (texts are compared whole; the digest keeps the index small)."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:20]


@dataclass(frozen=True)
class Trace:
    """What recognising a twin needs of one comment."""

    id: str
    family: str
    fp: str
    ts: float | None    # the platform's timestamp (epoch seconds)
    seq: int | None     # the numeric chat_event_id
    at: float           # when we read it (epoch seconds)
    wallet: str = ""
    user_id: str = ""
    fid: str = ""

    @classmethod
    def of(cls, comment: Comment, source: str, at: float) -> Trace:
        ts = comment.timestamp.timestamp() if isinstance(comment.timestamp, datetime) else None
        return cls(comment.id, family(source), fingerprint(comment.text), ts, comment.seq, at,
                   comment.wallet_address, comment.user_id, comment.fid)

    def senders(self) -> tuple[str, str, str]:
        return self.wallet, self.user_id, self.fid


def twins(a: Trace, b: Trace) -> bool:
    """Whether ``a`` and ``b`` are one message (see the module docstring)."""
    if a.id == b.id:
        return True
    if a.seq is not None and b.seq is not None:
        return a.seq == b.seq
    if a.family == b.family or a.fp != b.fp:
        return False
    pairs = [(x, y) for x, y in zip(a.senders(), b.senders(), strict=False) if x and y]
    if any(x != y for x, y in pairs):
        return False
    if a.ts is not None and b.ts is not None:
        return abs(a.ts - b.ts) <= WINDOW_S
    return bool(pairs) and abs(a.at - b.at) <= ARRIVAL_WINDOW_S


def distance(a: Trace, b: Trace) -> float:
    """How far apart in time two twins are (to pair the nearest first)."""
    if a.ts is not None and b.ts is not None:
        return abs(a.ts - b.ts)
    return ARRIVAL_WINDOW_S + abs(a.at - b.at)
