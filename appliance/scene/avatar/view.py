"""Drawing the avatar region for the scene renderer: its key (equal keys, equal pixels) and its
pixels, cheaply.

A frame is made of cached layers (the body; the head without its mouth, redrawn only when it
turns a step, blinks or changes its expression) moved by whole pixels as it breathes, and the
mouth drawn over them (what changes with every phoneme). So a frame costs two copies of cached
pictures and a few small paths; a vector drawing of the head a few times a second at most.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cairocffi as cairo

from ..model import AvatarState, SceneState
from .character import BREATH_UNITS, SIZE, Character, Pose, Theme
from .motion import Motion
from .pack import Pack, PackStore

log = logging.getLogger("appliance.scene")
CACHE_BYTES = 12 * 1024 * 1024   # cached layers: a sway cycle's head turns stay cached (~0.4 MB each in live at 720p)
Rect = tuple[int, int, int, int]


class AvatarView:
    """Keys and draws avatar regions; ``packs`` live in ``<scene dir>/avatars/``."""

    def __init__(self, packs: Path | None = None, *, rng: random.Random | None = None) -> None:
        self.store = PackStore(packs, log) if packs is not None else None
        self.motion: dict[int, Motion] = {}
        self._rng = rng or random.Random()
        self._characters: dict[Theme, Character] = {}
        self._frames: OrderedDict[tuple[object, ...], Any] = OrderedDict()
        self._poses: dict[int, Pose] = {}
        self.drawn = 0            # layers drawn (cache misses)

    # -- what to draw --

    def pack(self, avatar: AvatarState) -> Pack | None:
        return self.store.get(avatar.pack) if self.store is not None and avatar.pack else None

    def character(self, avatar: AvatarState) -> Character:
        theme = Theme(**avatar.theme.model_dump())
        if theme not in self._characters:
            self._characters = {theme: Character(theme)}   # one theme at a time
        return self._characters[theme]

    def _motion(self, region: Any) -> Motion:
        return self.motion.setdefault(id(region), Motion(self._rng))

    @staticmethod
    def fit(box: Rect, width: float, height: float) -> tuple[float, float, float]:
        """(x, y, scale) that fits a width x height canvas into ``box``, bottom edge on the box's."""
        x, y, w, h = box
        scale = min(w / width, h / height)
        return x + (w - width * scale) / 2, y + h - height * scale, scale

    def scale(self, state: SceneState, box: Rect) -> float:
        pack = self.pack(state.avatar)
        return self.fit(box, *((pack.width, pack.height) if pack else (SIZE, SIZE)))[2]

    def pose(self, region: Any, state: SceneState, now: float, box: Rect) -> Pose:
        pose = self._motion(region).pose(state.avatar, region.expression, now, self.scale(state, box))
        self._poses[id(region)] = pose
        return pose

    def key(self, region: Any, state: SceneState, now: float, box: Rect) -> tuple[object, ...]:
        pack = self.pack(state.avatar)
        return (self._look(pack, state.avatar), self.pose(region, state, now, box))

    def _look(self, pack: Pack | None, avatar: AvatarState) -> tuple[object, ...]:
        if pack is not None:
            return ("pack", pack.name, self.store.version if self.store else 0)
        return ("vector", *avatar.theme.model_dump().values())

    def next_change(self, regions: list[tuple[Any, Rect]], state: SceneState, now: float) -> float | None:
        """When the first of ``regions`` (each with its rectangle) changes next."""
        times = [self._motion(r).next_change(state.avatar, r.expression, now, self.scale(state, box))
                 for r, box in regions]
        return min(times) if times else None

    # -- pixels --

    def _layer(self, key: tuple[object, ...], size: tuple[int, int], paint: Any) -> Any:
        """A cached transparent picture of ``size`` (``paint(ctx)`` draws it on a miss)."""
        layer = self._frames.get(key)
        if layer is None:
            layer = cairo.ImageSurface(cairo.FORMAT_ARGB32, max(1, size[0]), max(1, size[1]))
            paint(cairo.Context(layer))
            self._frames[key] = layer
            while len(self._frames) > max(4, CACHE_BYTES // (4 * size[0] * size[1])):
                self._frames.popitem(last=False)
            self.drawn += 1
        else:
            self._frames.move_to_end(key)
        return layer

    def draw(self, ctx: Any, region: Any, state: SceneState, now: float, box: Rect) -> None:
        """The region's frame: cached layers moved by whole pixels, and the mouth drawn over them."""
        pose = self._poses.get(id(region)) or self.pose(region, state, now, box)
        pack = self.pack(state.avatar)
        look = self._look(pack, state.avatar)
        x, y, w, h = box
        width, height = (pack.width, pack.height) if pack else (SIZE, SIZE)
        ox, oy, scale = self.fit((0, 0, w, h), width, height)
        ctx.save()
        ctx.rectangle(*box)
        ctx.clip()
        if pack is None:
            character = self.character(state.avatar)
            body_up, head_up = (round(v * scale) for v in character.offsets(pose))

            def canvas(c: Any) -> Any:
                c.translate(ox, oy)
                c.scale(scale, scale)
                return c

            body = self._layer((look, "body", w, h), (w, h), lambda c: character.draw_body(canvas(c)))
            still = Pose(pose.expression, "X", pose.eyes, 0.0, pose.tilt, 0.0)
            head = self._layer((look, "head", still, w, h), (w, h), lambda c: character.draw_head(canvas(c), still))
            ctx.set_source_surface(body, x, y - body_up)
            ctx.paint()
            ctx.set_source_surface(head, x, y - head_up)
            ctx.paint()
            ctx.translate(x, y - head_up)
            character.draw_mouth(canvas(ctx), pose)
            ctx.restore()
            ctx.save()
            ctx.rectangle(*box)
            ctx.clip()
            ctx.translate(x, y)
            character.draw_extras(canvas(ctx), pose)
        else:
            up = round((pose.breath * BREATH_UNITS + pose.hop) * scale)
            still = Pose(pose.expression, "X", pose.eyes, 0.0, pose.tilt, 0.0)

            def sprite(c: Any, mouth: bool) -> None:
                c.translate(ox, oy)
                c.scale(scale, scale)
                self._paint_pack(c, pack, still if not mouth else pose, mouth=mouth)

            base = self._layer((look, "sprite", still, w, h), (w, h), lambda c: sprite(c, False))
            ctx.set_source_surface(base, x, y - up)
            ctx.paint()
            ctx.translate(x, y - up)
            sprite(ctx, True)
        ctx.restore()

    @staticmethod
    def _paint_pack(ctx: Any, pack: Pack, pose: Pose, *, mouth: bool) -> None:
        """The pack's base and eyes (``mouth`` false) or its mouth, turned by the pose's tilt
        about the canvas' bottom centre."""
        import math
        layers = pack.of(pose.expression)
        blinking = pose.eyes < 0.5 and (layers.eyes_closed is not None or bool(layers.blink_mouths))
        ctx.translate(pack.width / 2, pack.height)
        ctx.rotate(math.radians(pose.tilt))
        ctx.translate(-pack.width / 2, -pack.height)
        if mouth:
            images = [layers.mouth(pose.mouth, blinking=blinking)]
        else:
            eyes = layers.eyes_closed if blinking and layers.eyes_closed is not None else layers.eyes_open
            images = [layers.base, eyes]
        for image in images:
            if image is not None:
                ctx.set_source_surface(image, 0, 0)
                ctx.paint()
