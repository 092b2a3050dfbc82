"""Settings of going live and staying live: recovery, the builder's notifications and their
thresholds, the opening line, the direction channel and the heartbeat while not live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ..core.settings import SettingsModel, http_url


class RecoveryConfig(SettingsModel):
    """How hard to try after a crash, without 'spam streaming'."""

    backoff_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    backoff_max_s: Annotated[float, Field(ge=1, le=900)] = 120.0
    max_restarts_per_hour: Annotated[int, Field(ge=1, le=60)] = 6
    verification_recheck_s: Annotated[float, Field(ge=5, le=3600)] = 60.0


class WebhookTarget(SettingsModel):
    """One operator webhook: generic JSON, or shaped for Discord or Slack."""

    url: str
    preset: Literal["generic", "discord", "slack"] = "generic"
    events: list[Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]] = Field(
        default_factory=list)  # only these events (empty: all)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v)


class NotifyConfig(SettingsModel):
    """How the operator is told about live, blocked and failed states."""

    webhook_url: str | None = None
    file: Path | None = None  # default: <state_dir>/notifications.log
    webhooks: list[WebhookTarget] = Field(default_factory=list, max_length=20)
    retries: Annotated[int, Field(ge=0, le=10)] = 4  # per webhook delivery, off the stream's path
    backoff_s: Annotated[float, Field(gt=0, le=300)] = 2.0  # first retry delay; doubles, with jitter
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    large_tip_sol: Annotated[float, Field(ge=0)] = 0.5  # a tip this large is worth telling (0: every tip)
    low_viewers: Annotated[int, Field(ge=0)] = 1  # mid-stream, fewer viewers than this: ask for a share (0: off)
    low_viewers_after_s: Annotated[float, Field(ge=0)] = 600.0  # not before this long live
    low_viewers_every_s: Annotated[float, Field(ge=60)] = 1800.0  # at most this often
    # unusual activity: far outside the recent norm (the median minute of the last unusual_window_s)
    chat_surge_factor: Annotated[float, Field(ge=0, le=100)] = 4.0  # a minute with this many times the norm (0: off)
    chat_surge_min: Annotated[int, Field(ge=1, le=10_000)] = 12  # ... and at least this many messages in it
    viewer_drop_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5  # viewers this far below the norm (0: off)
    viewer_drop_min: Annotated[int, Field(ge=1)] = 6  # ... when the norm is at least this many viewers
    unusual_window_s: Annotated[float, Field(ge=120, le=86400)] = 900.0
    unusual_every_s: Annotated[float, Field(ge=0, le=86400)] = 900.0  # one kind told at most this often
    # milestones
    viewer_steps: list[Annotated[int, Field(ge=1)]] = Field(  # a stream's viewers reaching one (once each)
        default_factory=lambda: [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000], max_length=50)
    viewer_record_min: Annotated[int, Field(ge=1)] = 5  # more viewers than ever before, once the record is this high
    market_cap_step: Annotated[float, Field(ge=0, le=100)] = 2.0  # at the floor, then each time it doubles (0: off)
    market_cap_min: Annotated[float, Field(gt=0)] = 10_000.0  # the first market-cap step (no milestone below it)
    trade_burst: Annotated[int, Field(ge=0, le=10_000)] = 5  # this many trades ... (0: off)
    trade_burst_s: Annotated[float, Field(ge=1, le=3600)] = 120.0  # ... within this many seconds
    opening_retry_s: Annotated[float, Field(ge=0.1, le=60)] = 2.0  # the opening line again after this (doubling)

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("https", "http"):
            raise ValueError("must be an http(s) URL")
        return v


class HeartbeatConfig(SettingsModel):
    """While not live (standing by, a cool-down): every ``every_s`` read status, the chat and the
    token's stats, decide — stream, answer chat, or idle — and tell the builder (skill section 8)."""

    every_s: Annotated[float, Field(ge=2, le=7 * 86400)] = 4 * 3600.0
    stream_comments: Annotated[int, Field(ge=1, le=10_000)] = 3  # this many new comments: decide to stream
    stream_move_pct: Annotated[float, Field(gt=0, le=10_000)] = 20.0  # or the market cap moved this much since
    go_live: bool = False  # a "stream" decision while standing by goes live by itself (else the builder is asked)
    offline_reply: Annotated[str, Field(max_length=300)] = (  # the "answer chat" decision says this ("": never)
        "{names}: I'm not live right now, back soon. Follow so you catch the next stream.")

    @field_validator("offline_reply")
    @classmethod
    def _names(cls, v: str) -> str:
        try:
            v.format(names="n")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"the only placeholder is {{names}} ({exc})") from None
        return v


class DirectionConfig(SettingsModel):
    """The builder's answer to "which direction?" (CLI, console, MCP, a webhook's reply)."""

    max_chars: Annotated[int, Field(ge=20, le=500)] = 200  # longer directions are cut
    webhook_replies: bool = True  # a notification webhook may answer with {"direction": "..."}


class LiveConfig(SettingsModel):
    """Going live and staying live, beyond recovery: the heartbeat and the direction channel."""

    heartbeat: HeartbeatConfig = Field(default_factory=HeartbeatConfig)
    direction: DirectionConfig = Field(default_factory=DirectionConfig)
