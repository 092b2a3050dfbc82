"""Parsed answers of the retake.tv API.

Models ignore fields they do not know (the platform adds fields) and read every known spelling
of the fields they do know: each model's before-validator maps the answer through the alias table
of :mod:`.normalize` (one table for the whole client, documented in the README). Fields that are
not essential are lenient (``null`` or an odd type is the default, never a failure). A shape we
cannot read raises :class:`~appliance.core.errors.RetakeProtocolError`, never a KeyError deep inside a
loop. Comments live in :mod:`.normalize` (:class:`Comment`, :func:`parse_comments`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .credentials import Secret
from .normalize import (
    Comment,
    Count,
    Number,
    Text,
    canonical,
    normalize_comment,
    parse_comments,
)

__all__ = ["Comment", "normalize_comment", "parse_comments"]  # re-exported; the rest by name


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    alias_table: ClassVar[str | None] = None  # the normalize.ALIASES table that maps this answer

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, data: Any) -> Any:
        return canonical(data, cls.alias_table, keep_extra=cls.model_config.get("extra") == "allow") \
            if cls.alias_table else data


class _Open(_Answer):
    """Public listings: documented fields typed, the rest kept as they came."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RegisterResult(_Answer):
    """Only the token is required: it is issued once and never shown again (see client.register)."""

    alias_table: ClassVar[str] = "register"
    access_token: str = Field(repr=False)
    agent_id: Text = ""
    userDbId: Text = ""
    wallet_address: Text = ""
    token_address: Text = ""
    token_ticker: Text = ""


class VerificationMessage(_Answer):
    verification_message: str


class Verified(_Answer):
    verified: bool


class RtmpCredentials(_Answer):
    """``{url, key}``, ``{rtmp_url, stream_key}`` or ``{rtmpUrl, streamKey}``, maybe under ``data``."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)
    alias_table: ClassVar[str] = "rtmp"
    url: str
    key: Secret

    @field_validator("url")
    @classmethod
    def _rtmp_url(cls, v: str) -> str:
        # it becomes FFmpeg's output: an answer must not make that a file or another protocol
        if not v.lower().startswith(("rtmp://", "rtmps://")) or any(ch.isspace() or ord(ch) < 32 for ch in v):
            raise ValueError("url must be an rtmp:// or rtmps:// URL")
        return v

    @field_validator("key", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Secret:
        if isinstance(v, Secret):
            return v
        if not isinstance(v, str) or not v or any(ch.isspace() or ord(ch) < 32 for ch in v):
            raise ValueError("key must be a non-empty string without spaces")
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
    alias_table: ClassVar[str] = "stream_status"
    is_live: bool
    viewers: Count = 0
    uptime_seconds: Count = 0
    token_address: Text = ""
    userDbId: Text = ""


class ThumbnailResult(_Answer):
    message: str = ""
    thumbnail_url: str = ""


class StreamStopResult(_Answer):
    status: str = "stopped"
    duration_seconds: Count = 0
    viewers: Count = 0


class ChatSendResult(_Open):
    pass


# --- public API -------------------------------------------------------------------------

class UserSummary(_Open):
    alias_table: ClassVar[str] = "user_summary"
    user_id: str | None = None
    username: str | None = None
    ticker: str | None = None
    token_address: str | None = None
    market_cap: Number = None
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
    alias_table: ClassVar[str] = "token_summary"
    user_id: str | None = None
    username: str | None = None
    name: str | None = None
    ticker: str | None = None
    address: str | None = None
    current_market_cap: Number = None
    market_cap: Number = None
    growth_24h: float | None = None
    rank: int | None = None


class TokenStats(_Open):
    alias_table: ClassVar[str] = "token_stats"
    current_price: Number = None
    market_cap: Number = None
    all_time_high: Number = None
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
