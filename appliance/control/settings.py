"""Settings of the local control API and the console."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..core.settings import SettingsModel


class ControlConfig(SettingsModel):
    """The local control API (127.0.0.1 only)."""

    port: Annotated[int, Field(ge=0, le=65535)] = 0  # 0: a free one, chosen at start
    autostart: bool = True     # go live at start; false: stand by (alive, not ready) until go_live
    preview_fps: Annotated[float, Field(ge=0.2, le=2)] = 1.0       # the console's preview of the display
    preview_width: Annotated[int, Field(ge=160, le=1280)] = 640    # its width in pixels (height follows)
    session_hours: Annotated[float, Field(gt=0, le=168)] = 12.0    # a console login lasts this long
    mcp_terminal: bool = True  # the MCP `terminal` tool (an agent typing into the on-screen shell); false: no such tool
