"""Avatar packs: a folder of PNG layers and a small manifest, ``<scene dir>/avatars/NAME/avatar.yaml``:

    base: base.png                  # the character without eyes and mouth (optional, see below)
    eyes: {open: eyes-open.png, closed: eyes-closed.png}   # optional; without closed: no blink
    mouths:                         # a Rhubarb shape (X A B C D E F G H) or closed / half / open
      X: mouth-rest.png
      closed: mouth-closed.png
      open: mouth-open.png
    blink_mouths: {...}             # optional: mouths while the eyes are closed (whole sprites)
    expressions:                    # optional: layers that replace the default ones per expression
      happy: {base: base-happy.png, eyes: {open: eyes-happy.png}}

Every image has the size of the first one (the canvas); layers are drawn base, eyes, mouth, and
the whole is scaled to the avatar region, feet (the bottom edge) on the region's bottom.

A missing mouth shape falls back to its group (``closed`` for X A, ``half`` for B E F G H,
``open`` for C D), then to the nearest group that exists, so a PNGTuber pair (closed / open) or
an AITuberKit-style trio (closed / half / open) is a manifest of two or three lines. A
veadotube-style set (four whole sprites: idle, idle with eyes closed, talking, talking with eyes
closed) is ``mouths: {closed: idle.png, open: talk.png}`` plus ``blink_mouths`` with the two
blinking ones, and no base.

A pack is untrusted input: file names are bare ``*.png`` names in the pack's folder (no paths,
no links: read with :func:`appliance.scene.feeds.read_feed`), at most ``MAX_IMAGES`` images of at
most ``MAX_BYTES`` and ``MAX_SIDE`` pixels a side. A pack that does not load raises ConfigError
naming the file and the key; the renderer then keeps the last good one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...core.errors import ConfigError
from ..feeds import read_feed
from .character import EXPRESSIONS

MANIFEST = "avatar.yaml"
MAX_IMAGES = 64
MAX_BYTES = 8 * 1024 * 1024
MAX_SIDE = 2048
PNG = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}\.png$")]
MOUTH_KEYS = ("X", "A", "B", "C", "D", "E", "F", "G", "H", "closed", "half", "open")
GROUP = {"X": "closed", "A": "closed", "B": "half", "E": "half", "F": "half", "G": "half", "H": "half",
         "C": "open", "D": "open"}
NEAREST = {"closed": ("closed", "half", "open"), "half": ("half", "open", "closed"),
           "open": ("open", "half", "closed")}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EyesSpec(_Model):
    open: PNG | None = None
    closed: PNG | None = None


Mouths = dict[Annotated[str, Field(pattern=r"^(X|A|B|C|D|E|F|G|H|closed|half|open)$")], PNG]


class LayerSpec(_Model):
    base: PNG | None = None
    eyes: EyesSpec | None = None
    mouths: Mouths | None = None
    blink_mouths: Mouths | None = None


class Manifest(LayerSpec):
    expressions: dict[Annotated[str, Field(pattern="^(" + "|".join(EXPRESSIONS) + ")$")], LayerSpec] = \
        Field(default_factory=dict)


@dataclass
class Layers:
    """The images of one expression (cairo ImageSurfaces)."""

    base: Any = None
    eyes_open: Any = None
    eyes_closed: Any = None
    mouths: dict[str, Any] = field(default_factory=dict)
    blink_mouths: dict[str, Any] = field(default_factory=dict)

    def mouth(self, shape: str, *, blinking: bool = False) -> Any:
        table = self.blink_mouths if blinking and self.blink_mouths else self.mouths
        if shape in table:
            return table[shape]
        for group in NEAREST[GROUP.get(shape, "closed")]:
            if group in table:
                return table[group]
        return next(iter(table.values()), None)


@dataclass
class Pack:
    """A loaded pack: its canvas size and the layers of each expression."""

    name: str
    width: int
    height: int
    layers: dict[str, Layers]

    def of(self, expression: str) -> Layers:
        return self.layers.get(expression) or self.layers["neutral"]


def _image(folder: Path, name: str, where: str, cache: dict[str, Any]) -> Any:
    import cairocffi as cairo
    if name in cache:
        return cache[name]
    if len(cache) >= MAX_IMAGES:
        raise ConfigError(f"{folder / MANIFEST}: more than {MAX_IMAGES} images")
    path = folder / name
    data = read_feed(path, MAX_BYTES + 1)
    if data is None:
        raise ConfigError(f"{path}: {where}: not a regular file in the pack's folder")
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: {where}: larger than {MAX_BYTES // 1024 // 1024} MB")
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ConfigError(f"{path}: {where}: not a PNG file")
    try:
        surface = cairo.ImageSurface.create_from_png(io.BytesIO(data))
    except Exception as exc:
        raise ConfigError(f"{path}: {where}: not a readable PNG ({type(exc).__name__})") from None
    if max(surface.get_width(), surface.get_height()) > MAX_SIDE:
        raise ConfigError(f"{path}: {where}: larger than {MAX_SIDE} pixels a side")
    cache[name] = surface
    return surface


def _layers(folder: Path, spec: LayerSpec, default: Layers | None, where: str, cache: dict[str, Any]) -> Layers:
    def load(name: str | None, key: str, fallback: Any) -> Any:
        return _image(folder, name, f"{where}{key}", cache) if name else fallback

    eyes = spec.eyes or EyesSpec()
    layers = Layers(
        base=load(spec.base, "base", default.base if default else None),
        eyes_open=load(eyes.open, "eyes.open", default.eyes_open if default else None),
        eyes_closed=load(eyes.closed, "eyes.closed", default.eyes_closed if default else None),
        mouths={k: _image(folder, v, f"{where}mouths.{k}", cache) for k, v in (spec.mouths or {}).items()}
        or (dict(default.mouths) if default else {}),
        blink_mouths={k: _image(folder, v, f"{where}blink_mouths.{k}", cache)
                      for k, v in (spec.blink_mouths or {}).items()}
        or (dict(default.blink_mouths) if default else {}))
    return layers


def load_pack(folder: Path) -> Pack:
    """The pack in ``folder``; ConfigError naming the file and key when it does not load."""
    manifest = folder / MANIFEST
    raw = read_feed(manifest, 64_000)
    if raw is None:
        raise ConfigError(f"{manifest}: missing (an avatar pack needs its manifest)",
                          fix="see docs/avatar.md: Avatar packs")
    try:
        data = yaml.safe_load(raw.decode("utf-8", "replace"))
        spec = Manifest.model_validate(data if data is not None else {})
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{manifest}:{f' line {mark.line + 1}' if mark else ''} is not valid YAML",
                          fix="fix the file; the last good pack stays on screen") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{manifest}: {problems}", fix="fix the file; the last good pack stays on screen") from None
    if not spec.mouths:
        raise ConfigError(f"{manifest}: mouths: at least one mouth image is needed")
    cache: dict[str, Any] = {}
    neutral = _layers(folder, spec, None, "", cache)
    layers = {"neutral": neutral}
    for name, variant in spec.expressions.items():
        layers[name] = _layers(folder, variant, neutral, f"expressions.{name}.", cache)
    sizes = {(s.get_width(), s.get_height()) for s in cache.values()}
    first = neutral.base or next(iter(neutral.mouths.values()))
    width, height = first.get_width(), first.get_height()
    if len(sizes) > 1:
        odd = next(n for n, s in cache.items() if (s.get_width(), s.get_height()) != (width, height))
        raise ConfigError(f"{folder / odd}: {cache[odd].get_width()}x{cache[odd].get_height()}, "
                          f"but the pack's canvas is {width}x{height}: every layer has the same size")
    return Pack(folder.name, width, height, layers)


class PackStore:
    """Packs by name from ``<folder>``, each reloaded when its files change; a pack that fails to
    load is logged with its file and the last good version is kept."""

    def __init__(self, folder: Path, log: Any) -> None:
        self.folder = Path(folder)
        self.log = log
        self.packs: dict[str, Pack] = {}
        self.errors: dict[str, str] = {}
        self.version = 0

    def get(self, name: str) -> Pack | None:
        if name and name not in self.packs and name not in self.errors:
            self.reload(name)
        return self.packs.get(name)

    def reload(self, name: str) -> None:
        folder = self.folder / name
        try:
            pack = load_pack(folder)
        except ConfigError as exc:
            self.errors[name] = str(exc)
            kept = "keeping the last good one" if name in self.packs else "drawing the default avatar"
            self.log.error("avatar pack %s broken, %s: %s", name, kept, exc)
            return
        self.errors.pop(name, None)
        self.packs[name] = pack
        self.version += 1
        self.log.info("avatar pack %s loaded (%dx%d, %d expressions)", name, pack.width, pack.height,
                      len(pack.layers))
