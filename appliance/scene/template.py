"""Scene templates: YAML files in the scene folder (``scene.dir``, default the repo's
``overlays/``), one scene each, named by the file (``live.yaml`` is the scene ``live``).

A scene is a background and a list of regions, each placed by ``box: [x, y, w, h]`` in
percent of the screen. Region types:

  title    the agent's name and the current topic
  content  the terminal window (not drawn: the window manager places it; see scripts/openbox-rc.xml)
  chat     recent chat messages, names styled apart; the message being answered is marked
  caption  what the agent is saying right now
  stats    viewers, uptime, the token's market cap
  alert    a tip, a trade, a new viewer, shown for a few seconds
  image    a PNG file from the scene folder
  text     static ``text:``, or the feed named by ``feed:`` (``overlays/NAME.txt``; ``show`` is
           what `appliance show TEXT` put there)
  avatar   the agent's face: the default character or a pack (``avatar.pack``), speaking with the
           voice, blinking, reacting; ``expression:`` is its face when no mood is shown
           (see appliance/scene/avatar/ and docs/avatar.md)

A template that does not parse is reported with its file and the key at fault; the renderer
keeps the last good version on screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..core.errors import ConfigError
from ..core.settings import validation_problems, yaml_problem

Colour = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")]
Percent = Annotated[float, Field(ge=0, le=100)]
MAX_TEMPLATE_BYTES = 64_000
MAX_REGIONS = 24
SCENE_NAME = r"^[A-Za-z0-9_-]{1,40}$"


class _Region(BaseModel):
    model_config = ConfigDict(extra="forbid")

    box: tuple[Percent, Percent, Percent, Percent]
    font: Annotated[str, Field(pattern=r"^[A-Za-z0-9 ,-]{1,60}$")] = "Noto Sans"
    size: Annotated[float, Field(ge=4, le=200)] = 22          # px at 720 lines (scaled with the screen)
    color: Colour = "#f2f4f8"
    background: Colour | None = None
    align: Literal["left", "center", "right"] = "left"
    padding: Annotated[float, Field(ge=0, le=100)] = 10       # px at 720 lines

    @field_validator("box")
    @classmethod
    def _inside(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x, y, w, h = box
        if w <= 0 or h <= 0 or x + w > 100.001 or y + h > 100.001:
            raise ValueError("box [x, y, w, h] must have a size and stay within 0..100")
        return box


class TitleRegion(_Region):
    type: Literal["title"]
    topic_color: Colour = "#9fb3c8"


class ContentRegion(_Region):
    type: Literal["content"]


class ChatRegion(_Region):
    type: Literal["chat"]
    user_color: Colour = "#7cc4ff"
    own_color: Colour = "#ffd166"
    answering_background: Colour = "#2d4a6b"
    max_lines: Annotated[int, Field(ge=1, le=30)] = 12


class CaptionRegion(_Region):
    type: Literal["caption"]


class StatsRegion(_Region):
    type: Literal["stats"]


class AlertRegion(_Region):
    type: Literal["alert"]


class ImageRegion(_Region):
    type: Literal["image"]
    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.png$")]


class TextRegion(_Region):
    type: Literal["text"]
    text: Annotated[str, Field(max_length=500)] = ""
    feed: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")] | None = None


class AvatarRegion(_Region):
    type: Literal["avatar"]
    expression: Literal["neutral", "happy", "thinking", "surprised", "sad"] = "neutral"
    padding: Annotated[float, Field(ge=0, le=100)] = 0


Region = Annotated[TitleRegion | ContentRegion | ChatRegion | CaptionRegion | StatsRegion
                   | AlertRegion | ImageRegion | TextRegion | AvatarRegion, Field(discriminator="type")]


class Scene(BaseModel):
    """One scene template."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    background: Colour = "#0d1117"
    regions: Annotated[list[Region], Field(max_length=MAX_REGIONS)] = Field(default_factory=list)

    @property
    def content(self) -> ContentRegion | None:
        return next((r for r in self.regions if isinstance(r, ContentRegion)), None)


def parse_scene(text: str, name: str, source: str = "") -> Scene:
    """A scene from YAML text; ConfigError naming the file, the key and why."""
    source = source or f"{name}.yaml"
    if len(text.encode("utf-8", "replace")) > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_TEMPLATE_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}:{yaml_problem(exc)}",
                          fix="fix the file; the last good version stays on screen") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a scene is a mapping with regions:", fix="see overlays/live.yaml")
    try:
        scene = Scene.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {validation_problems(exc)}",
                          fix="fix the file; the last good version stays on screen") from None
    return scene.model_copy(update={"name": name})


def scene_files(folder: Path) -> dict[str, Path]:
    """Scene name -> template file, for every ``*.yaml`` of ``folder`` with a valid name."""
    import re
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))
            if re.match(SCENE_NAME, p.stem) and p.is_file() and not p.is_symlink()}


def load_scene(path: Path) -> Scene:
    from .feeds import read_feed
    data = read_feed(path, MAX_TEMPLATE_BYTES + 1)
    if data is None:
        raise ConfigError(f"{path}: not a regular file")
    return parse_scene(data.decode("utf-8", "replace"), path.stem, str(path))
