"""Chat: read the agent's own chat, answer new messages, never let it go silent."""

from .brains import ChatContext, OfflineResponder, Responder
from .loop import ChatLoop

__all__ = ["ChatContext", "ChatLoop", "OfflineResponder", "Responder"]
