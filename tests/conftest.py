"""Shared fixtures: real processes and the sandbox (see each fixtures module's docstring)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from media_fixtures import flv_target, pulse_server, xvfb_display  # noqa: E402,F401
from sandbox_fixtures import rtmp_sandbox, sandbox, sandbox_agent  # noqa: E402,F401


def entry_name(entry: dict) -> str:
    """'agent/stream/start', 'RTMP publish', ... for a sandbox request-log entry."""
    return entry.get("event") or entry["path"].split("/api/v1/")[-1].strip("/")


def entry_time(entry: dict) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
