"""Settings of the local control API and the console."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..core.settings import SettingsModel


class ControlConfig(SettingsModel):
    """The local control API (127.0.0.1 only)."""

    port: Annotated[int, Field(ge=0, le=65535)] = 0  # 0: a free one, chosen at start
    # where it listens. 0.0.0.0 only inside a container whose engine publishes the port on the
    # host's loopback (`appliance fleet` sets it with `appliance up --control-listen`): a
    # published port reaches the container's interface, never its loopback. The token and the
    # loopback Host check still hold; the engine's network must not be shared with strangers.
    listen: Literal["127.0.0.1", "0.0.0.0"] = "127.0.0.1"  # noqa: S104
    autostart: bool = True     # go live at start; false: stand by (alive, not ready) until go_live
    preview_fps: Annotated[float, Field(ge=0.2, le=2)] = 1.0       # the console's preview of the display
    preview_width: Annotated[int, Field(ge=160, le=1280)] = 640    # its width in pixels (height follows)
    session_hours: Annotated[float, Field(gt=0, le=168)] = 12.0    # a console login lasts this long
    mcp_terminal: bool = True  # the MCP `terminal` tool (an agent typing into the on-screen shell); false: no such tool
