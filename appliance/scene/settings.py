"""Settings of the scene renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from ..core.settings import SettingsModel


class SceneConfig(SettingsModel):
    """The on-screen layout drawn by the scene renderer (appliance/scene/)."""

    dir: Path | None = None  # scene templates (*.yaml) and their images; default the repo's overlays/
    default: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = "live"
    topic: Annotated[str, Field(max_length=200)] = ""   # under the title; `appliance scene` and chat may change it
    # the scene follows the stream: starting while going live, live, brb while held or recovering, ending at stop
    follow: bool = True
    starting_s: Annotated[float, Field(ge=0, le=600)] = 5.0  # the starting card stays this long once live
    ending_s: Annotated[float, Field(ge=0, le=15)] = 5.0  # the end card, streamed this long before the encoder stops
