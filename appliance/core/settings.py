"""What every settings model shares: the strict pydantic base, URL and environment-name checks,
and the facts of where the appliance runs (in the container or not).

Each capability keeps its own settings model beside it (``retake/settings.py``,
``media/settings.py``, ``voice/settings.py``, ...); ``appliance/config.py`` composes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

IN_CONTAINER = bool(os.environ.get("APPLIANCE_IN_CONTAINER"))  # set by the Dockerfile
DEFAULT_STATE_DIR = Path("/state") if IN_CONTAINER else Path(
    os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "retake-appliance"


class SettingsModel(BaseModel):
    """Base of every settings model: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"  # the name of an environment variable
