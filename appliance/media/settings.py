"""Settings of the media pipeline: the display and encoder, the content window, the on-screen
terminal and simulcast outputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ..core.secrets import SecretRef
from ..core.settings import SettingsModel


class StreamConfig(SettingsModel):
    """Display and encoder settings; defaults are the reference's FFmpeg command."""

    display: Annotated[str, Field(pattern=r"^(auto|:[0-9]+(\.[0-9]+)?)$")] = "auto"  # auto: a free one at start
    width: Annotated[int, Field(ge=320, le=3840)] = 1280
    height: Annotated[int, Field(ge=240, le=2160)] = 720
    framerate: Annotated[int, Field(ge=10, le=60)] = 30
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    video_bitrate_k: Annotated[int, Field(ge=200, le=20000)] = 1500
    bufsize_k: Annotated[int, Field(ge=200, le=40000)] = 3000
    keyframe_s: Annotated[float, Field(gt=0, le=4)] = 2.0
    audio_bitrate_k: Annotated[int, Field(ge=32, le=320)] = 128
    sample_rate: Literal[44100, 48000] = 44100
    strict_cbr: bool = False  # x264 nal-hrd=cbr; the reference command is not strict CBR
    # libx264 threads. 1 (the default): 3-5 % less CPU at equal SSIM, and 4 appliances keep every
    # frame on 2 cores where FFmpeg's choice kept 3 (bench/density.py); 0 lets FFmpeg choose (one
    # per core, the skill's reference) for a big screen on a host of its own
    encoder_threads: Annotated[int, Field(ge=0, le=16)] = 1
    audio_source: Literal["pulse", "silent"] = "pulse"
    sink: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "stream"
    thumbnail_interval_s: float = 180.0
    live_timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    status_poll_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    stall_after_s: Annotated[float, Field(ge=2, le=60)] = 6.0
    min_speed: Annotated[float, Field(gt=0, le=1)] = 0.95

    @field_validator("thumbnail_interval_s")
    @classmethod
    def _clamp_thumbnail(cls, v: float) -> float:
        # the platform asks for a refresh every 2-5 minutes
        return min(max(v, 120.0), 300.0)


class OverlayConfig(SettingsModel):
    """The content window and on-screen text."""

    content_log: Path | None = None  # default: <state_dir>/stream.log
    watch_dir: Path | None = None  # *.txt written here appear on screen; default the repo's overlays/
    font_size: Annotated[int, Field(ge=6, le=48)] = 12
    foreground: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#00ff00"
    background: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#000000"
    max_line_chars: Annotated[int, Field(ge=20, le=400)] = 150


class TerminalConfig(SettingsModel):
    """The on-screen terminal: a tmux session in the content window (the log in one pane, a
    shell in the other) that the operator drives through the console or the MCP tool
    ``terminal`` (control token or console session). Viewers' chat never reaches it: no chat
    brain is given it (none of today's brains can call tools; README: The on-screen terminal)."""

    shell: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_./-]+$")] = "/bin/bash"
    log_percent: Annotated[int, Field(ge=10, le=90)] = 45          # the log pane's share of the height
    # the shell's working folder (its HOME), the shell user's own; kept between starts when set
    # (never inside paths.state_dir); default: a fresh folder beside the tree's runtime folder
    workspace: Path | None = None


class SimulcastOutput(SettingsModel):
    """One extra ingest (Twitch, YouTube, ...) fed from the same encode (appliance/media/simulcast.py)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    url: str                    # rtmp(s)://host[:port]/app, without the key
    key_file: Path              # the stream key, alone in a file (mode 600): never in this config

    def secret(self) -> SecretRef:
        """The stream key as a secret: the tree's store (``simulcast-<name>``), else ``key_file``."""
        return SecretRef(f"simulcast-{self.name}", file=self.key_file, what=f"simulcast output {self.name}")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname or not parts.path.strip("/"):
            raise ValueError("must be rtmp://host/app or rtmps://host/app (the key goes in key_file)")
        if re.search(r"[\s|\[\]'\"\\]", v):
            raise ValueError("must not contain spaces, quotes, backslashes, '|', '[' or ']'")
        return v.rstrip("/")


class SimulcastConfig(SettingsModel):
    """Extra outputs from the same encode: no second encode; a failing one never touches the
    retake.tv stream and is retried on its own."""

    outputs: Annotated[list[SimulcastOutput], Field(max_length=4)] = Field(default_factory=list)
    retry_s: Annotated[float, Field(gt=0, le=60)] = 2.0        # first wait before a retry
    retry_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0  # the backoff's ceiling
