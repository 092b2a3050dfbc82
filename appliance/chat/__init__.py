"""Chat: read the agent's chat in real time, answer every message exactly once, never let it go silent.

    sources.py     Socket.IO + polling catch-up -> one ordered, de-duplicated stream
    loop.py        ChatLoop: ingest, the reply worker, proactive lines
    outbox.py      filtered, rate-capped, journaled sending
    journal.py     what was read and answered (exactly once across crashes)
    memory.py      viewer memory (SQLite, WAL)
    moderation.py  what may come in, what may go out
    brains/        host, llm, command, webhook, external
"""

from .brains import Brain, ChatContext, HostBrain, OfflineResponder, Responder, Turn
from .loop import ChatLoop, ChatServices

__all__ = ["Brain", "ChatContext", "ChatLoop", "ChatServices", "HostBrain", "OfflineResponder",
           "Responder", "Turn"]
