"""Settings of going live and staying live: recovery and the operator's notifications."""

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

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("https", "http"):
            raise ValueError("must be an http(s) URL")
        return v
