"""Cross-stream chat (`appliance chat --to NAME TEXT`): find another streamer through the public
API and post in their stream with our own token (the platform allows it; no stream of ours needed).

The text goes through the same outgoing filter as every reply (never a secret, no pings).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.errors import InputError, RetakeNotFound
from ..retake.client import RetakeClient
from ..retake.models import Streamer
from .moderation import OutgoingFilter


def find_streamer(client: RetakeClient, name: str) -> Streamer:
    """``GET /users/streamer/<name>``; else an exact (case-insensitive) name from ``/users/search/``."""
    try:
        found = client.streamer(name)
        if found.streamer_id:
            return found
    except RetakeNotFound:
        pass
    for user in client.search_users(name):
        if user.user_id and (user.username or "").casefold() == name.casefold():
            return Streamer(streamer_id=user.user_id, username=user.username)
    raise InputError(f"no streamer named {name!r} on the platform", fix="check the name (GET /users/search/<name>)")


def chat_in_stream(client: RetakeClient, name: str, text: str, *,
                   secrets: Iterable[str] = ()) -> tuple[Streamer, str | None]:
    """Post ``text`` in ``name``'s stream; the streamer and the platform's message id."""
    values = list(secrets)
    message = OutgoingFilter(lambda: values, max_chars=500, links="allow").check(text, trusted=True)
    target = find_streamer(client, name)
    result = client.chat_send(message, str(target.streamer_id))
    message_id = getattr(result, "message_id", None)
    return target, str(message_id) if message_id else None
