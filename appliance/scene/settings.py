"""Settings of the scene renderer, and of the avatar it draws (``scene.avatar``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

from pydantic import Field

from ..core.settings import SettingsModel
from .model import AvatarState, Theme

Colour = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]

# The default character's palettes (hair, eyes, outfit, accent), designed together; an agent
# that sets no colours gets the one its name picks, so two agents on one host differ.
PALETTES: tuple[tuple[str, str, str, str], ...] = (
    ("#6a3fd4", "#1fb6c9", "#2b3950", "#ffd166"),   # violet hair, teal eyes, navy hoodie, gold
    ("#e0563b", "#3f8f4f", "#2f3b2f", "#7ee2b8"),   # red hair, green eyes, forest hoodie, mint
    ("#2d9bd6", "#b5651d", "#3a2b4f", "#ff8fab"),   # sky hair, amber eyes, plum hoodie, pink
    ("#f2c14e", "#3d5a80", "#1f4e5f", "#ff6b6b"),   # blond hair, blue eyes, teal hoodie, coral
    ("#2e2e3a", "#d64550", "#5a2a27", "#f4a261"),   # black hair, red eyes, maroon hoodie, orange
    ("#c77dff", "#2a9d8f", "#264653", "#e9c46a"),   # lilac hair, jade eyes, slate hoodie, sand
)


class AvatarColors(SettingsModel):
    """The default character's colours; each one not set comes from the agent's palette."""

    skin: Colour | None = None
    hair: Colour | None = None
    eyes: Colour | None = None
    outfit: Colour | None = None
    accent: Colour | None = None


class AvatarConfig(SettingsModel):
    """The agent's face in the scenes' ``avatar`` regions (docs/avatar.md)."""

    pack: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{0,40}$")] = ""   # <scene.dir>/avatars/NAME/; "": drawn
    colors: AvatarColors = Field(default_factory=AvatarColors)
    mood_s: Annotated[float, Field(ge=1, le=60)] = 6.0         # how long a reply's mood shows
    # each mouth shape goes up this much before its sound (negative: after it). 0: the encoder
    # keeps audio and video on one offset at every start, and a mouth presented at audible_at
    # reads within a few ms of its sound in the stream (docs/avatar.md, Lip sync); a calibration
    # for other set-ups
    lead_ms: Annotated[float, Field(ge=-200, le=200)] = 0.0

    def state(self, agent_name: str) -> AvatarState:
        """The avatar's starting state for the agent called ``agent_name``."""
        digest = hashlib.sha256(agent_name.encode("utf-8")).digest()
        hair, eyes, outfit, accent = PALETTES[digest[0] % len(PALETTES)]
        chosen = self.colors
        theme = Theme(skin=chosen.skin or Theme().skin, hair=chosen.hair or hair, eyes=chosen.eyes or eyes,
                      outfit=chosen.outfit or outfit, accent=chosen.accent or accent)
        return AvatarState(pack=self.pack, theme=theme, lead_s=self.lead_ms / 1000)


class SceneConfig(SettingsModel):
    """The on-screen layout drawn by the scene renderer (appliance/scene/)."""

    dir: Path | None = None  # scene templates (*.yaml) and their images; default the repo's overlays/
    default: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = "live"
    topic: Annotated[str, Field(max_length=200)] = ""   # under the title; `appliance scene` and chat may change it
    # the scene follows the stream: starting while going live, live, brb while held or recovering, ending at stop
    follow: bool = True
    starting_s: Annotated[float, Field(ge=0, le=600)] = 5.0  # the starting card stays this long once live
    ending_s: Annotated[float, Field(ge=0, le=15)] = 5.0  # the end card, streamed this long before the encoder stops
    avatar: AvatarConfig = Field(default_factory=AvatarConfig)
