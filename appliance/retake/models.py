"""Parsed answers of the retake.tv API.

Models ignore fields they do not know (the platform adds fields), and accept the shapes
the platform is known to answer in besides the documented one (see :func:`parse_comments`).
A shape we cannot read raises :class:`~appliance.errors.RetakeProtocolError`, never a
KeyError deep inside a loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..credentials import Secret
from ..errors import RetakeProtocolError
from ..sanitize import clean_name, clean_text


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Open(BaseModel):
    """Public listings: documented fields typed, the rest kept as they came."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RegisterResult(_Answer):
    access_token: str = Field(repr=False)
    agent_id: str
    userDbId: str
    wallet_address: str = ""
    token_address: str = ""
    token_ticker: str = ""


class VerificationMessage(_Answer):
    verification_message: str


class Verified(_Answer):
    verified: bool


class RtmpCredentials(_Answer):
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)
    url: str
    key: Secret

    @field_validator("key", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Secret:
        if isinstance(v, Secret):
            return v
        if not isinstance(v, str) or not v:
            raise ValueError("key must be a non-empty string")
        return Secret(v)

    def target(self) -> str:
        """The FFmpeg output URL ``url/key`` (a secret: never log it)."""
        return f"{self.url.rstrip('/')}/{self.key.reveal()}"


class TokenInfo(_Answer):
    name: str = ""
    ticker: str = ""
    imageUrl: str = ""
    tokenAddress: str = ""
    tokenType: str = ""


class StreamStartResult(_Answer):
    success: bool = True
    token: TokenInfo | None = None


class StreamStatus(_Answer):
    is_live: bool
    viewers: int = 0
    uptime_seconds: int = 0
    token_address: str | None = ""
    userDbId: str | None = ""


class ThumbnailResult(_Answer):
    message: str = ""
    thumbnail_url: str = ""


class StreamStopResult(_Answer):
    status: str = "stopped"
    duration_seconds: int = 0
    viewers: int = 0


class ChatSendResult(_Open):
    pass


class Comment(_Answer):
    """One chat message, whichever shape it arrived in; text and names already sanitized.

    ``user_id`` is the platform user id where the shape gives it (never the Farcaster ``fid``);
    ``seq`` is the numeric ``chat_event_id`` (ordering without timestamps); ``kind`` is
    "message", "tip" or "trade"; ``raw`` keeps the payload for debugging (never dumped).
    """

    id: str
    text: str
    username: str
    user_id: str = ""
    wallet_address: str = ""
    fid: str = ""
    timestamp: datetime | None = None
    seq: int | None = None
    kind: str = "message"
    amount: float | None = None
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)


def _parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            number = float(value)
            return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _amount(data: Any) -> float | None:
    value = data.get("amount") if isinstance(data, dict) else None
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _comment_from(item: Any) -> Comment:
    if not isinstance(item, dict):
        raise ValueError(f"a comment must be an object, not {type(item).__name__}")
    if "_id" in item:  # documented: {_id, streamId, text, timestamp, author{...}}
        author = item.get("author") or {}
        if not isinstance(author, dict):
            author = {}
        return Comment(id=str(item["_id"]), text=clean_text(item.get("text", "")),
                       username=clean_name(author.get("fusername") or author.get("username")),
                       user_id=str(author.get("user_id") or ""),
                       wallet_address=str(author.get("walletAddress") or ""),
                       fid=str(author.get("fid") or ""),
                       timestamp=_parse_time(item.get("timestamp")), raw=item)
    if "chat_event_id" in item:  # observed: {chat_event_id, sender_user_id, sender_username, ...}
        event_id = str(item["chat_event_id"])
        kind = str(item.get("type") or "message")
        return Comment(id=event_id, text=clean_text(item.get("text", "")),
                       username=clean_name(item.get("sender_username") or item.get("sender_display_name")),
                       user_id=str(item.get("sender_user_id") or ""),
                       wallet_address=str(item.get("sender_wallet_address") or ""),
                       timestamp=_parse_time(item.get("timestamp") or item.get("created_at")),
                       seq=int(event_id) if event_id.isdigit() else None, kind=kind,
                       amount=_amount(item.get("tip_data") if kind == "tip" else item.get("trade_data")),
                       raw=item)
    raise ValueError(f"unknown comment fields {sorted(item)[:8]}")


def normalize_comment(item: Any) -> Comment:
    """One comment (a ``stream/comments`` item or a Socket.IO ``message`` payload) as our model;
    RetakeProtocolError when it cannot be read or has no text."""
    try:
        comment = _comment_from(item)
    except (ValueError, ValidationError) as exc:
        raise RetakeProtocolError(f"unreadable comment ({exc})") from None
    if not comment.text:
        raise RetakeProtocolError(f"comment {comment.id}: no text")
    return comment


def parse_comments(payload: Any) -> list[Comment]:
    """Both known shapes of ``stream/comments``, returned oldest first.

    Documented: ``{"comments": [{_id, ...}]}``. Observed on the platform: newest-first items
    ``{chat_event_id, sender_username, ...}``, as a bare array or under ``comments``.
    """
    items = payload.get("comments", payload.get("chats")) if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise RetakeProtocolError("stream/comments: expected a list of comments "
                                  f"(got {type(payload).__name__} with keys {sorted(payload)[:5] if isinstance(payload, dict) else '-'})")
    try:
        comments = [_comment_from(item) for item in items]
    except (ValueError, ValidationError) as exc:
        raise RetakeProtocolError(f"stream/comments: unreadable comment ({exc})") from None
    observed = bool(items) and isinstance(items[0], dict) and "chat_event_id" in items[0]
    if observed:
        comments.reverse()  # observed answers come newest first
    if all(c.timestamp for c in comments):
        comments.sort(key=lambda c: c.timestamp)  # type: ignore[arg-type,return-value]  # stable on ties
    return comments


# --- public API -------------------------------------------------------------------------

class UserSummary(_Open):
    user_id: str | None = None
    username: str | None = None
    ticker: str | None = None
    token_address: str | None = None
    market_cap: float | None = None
    rank: int | None = None


class UserMetadata(_Open):
    username: str | None = None
    bio: str | None = None
    wallet_address: str | None = None
    social_links: list[Any] = Field(default_factory=list)
    profile_picture_url: str | None = None


class Streamer(_Open):
    streamer_id: str | None = None
    username: str | None = None


class Session(_Open):
    session_id: str | None = None
    streamer_id: str | None = None
    title: str | None = None


class TokenSummary(_Open):
    user_id: str | None = None
    username: str | None = None
    name: str | None = None
    ticker: str | None = None
    address: str | None = None
    current_market_cap: float | None = None
    market_cap: float | None = None
    growth_24h: float | None = None
    rank: int | None = None


class TokenStats(_Open):
    current_price: float | None = None
    market_cap: float | None = None
    all_time_high: float | None = None
    growth: dict[str, Any] | None = None
    volume: Any = None
    earnings: Any = None


class Trade(_Open):
    pass


class PublicChat(_Open):
    sender_username: str | None = None
    text: str | None = None
    type: str | None = None
    tip_data: Any = None
    trade_data: Any = None


class JoinToken(_Open):
    pass
