"""The default avatar: a character of our own, drawn in vector with cairo (no image files, no
licence question): a streamer with a purple fringe and a single upright lock, big headphones
and a hoodie. Built to read small: the silhouette (the lock, the headphone cups, the shoulders)
survives a thumbnail, and each expression changes the eyes *and* the brows *and* the idle mouth,
plus one mark of its own (blush, thought dots, a tear), so they are told apart at 480p.

Everything is drawn in design units on a 400 x 400 canvas (the bust), scaled by the caller.
Colours come from :class:`Theme` (config: ``avatar.colors``); shades are derived from them.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Any

SIZE = 400.0
BREATH_UNITS = 3.2     # how far the head rises at the top of a breath (the shoulders: 70 % of it)
MOUTH = (200.0, 238.0)                   # the mouth's centre on the canvas (design units)
MOUTH_BOX = (-34.0, -16.0, 68.0, 48.0)   # every mouth drawing fits in this box around it (x, y, w, h)
MOUTH_INSIDE = "#4a1221"                 # the open mouth's inside: what a decoder looks for
EXPRESSIONS = ("neutral", "happy", "thinking", "surprised", "sad")
RGBA = tuple[float, float, float, float]


def parse(colour: str) -> RGBA:
    value = colour.lstrip("#")
    parts = [int(value[i:i + 2], 16) / 255 for i in range(0, len(value), 2)]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)


def shade(colour: RGBA, lightness: float = 0.0, saturation: float = 1.0, alpha: float | None = None) -> RGBA:
    """``colour`` made lighter (+) or darker (-) in HLS, its saturation scaled."""
    hue, light, sat = colorsys.rgb_to_hls(*colour[:3])
    r, g, b = colorsys.hls_to_rgb(hue, max(0.0, min(1.0, light + lightness)), max(0.0, min(1.0, sat * saturation)))
    return (r, g, b, colour[3] if alpha is None else alpha)


@dataclass(frozen=True)
class Theme:
    """The character's colours (``#rrggbb``)."""

    skin: str = "#f4c7a1"
    hair: str = "#6a3fd4"
    eyes: str = "#1fb6c9"
    outfit: str = "#2b3950"
    accent: str = "#ffd166"


@dataclass(frozen=True)
class Pose:
    """One frame of the character: what changes from frame to frame."""

    expression: str = "neutral"
    mouth: str = "X"          # a Rhubarb mouth shape
    eyes: float = 1.0         # 1 open, 0 closed (a blink passes through 0.5)
    breath: float = 0.0       # -1..1: shoulders and head rise with it (BREATH_UNITS at 1)
    tilt: float = 0.0         # degrees, + to the right
    hop: float = 0.0          # design units up (a reaction's bounce)


def _round(ctx: Any) -> None:
    import cairocffi as cairo
    ctx.set_line_cap(cairo.LINE_CAP_ROUND)
    ctx.set_line_join(cairo.LINE_JOIN_ROUND)


def _expression(pose: Pose) -> str:
    return pose.expression if pose.expression in EXPRESSIONS else "neutral"


class Character:
    """Draws :class:`Pose` s of the default character in a :class:`Theme`."""

    def __init__(self, theme: Theme) -> None:
        self.theme = theme
        self.skin = parse(theme.skin)
        self.hair = parse(theme.hair)
        self.iris = parse(theme.eyes)
        self.outfit = parse(theme.outfit)
        self.accent = parse(theme.accent)
        self.line = shade(self.hair, -0.28, 0.7)          # outlines: a dark tone of the hair
        self.skin_shadow = shade(self.skin, -0.12, 1.1)
        self.blush = (0.95, 0.42, 0.45, 0.0)
        self.mouth_inside = parse(MOUTH_INSIDE)
        self.tongue = (0.91, 0.42, 0.48, 1.0)
        self.teeth = (0.99, 0.97, 0.94, 1.0)

    # -- helpers --

    @staticmethod
    def _fill(ctx: Any, colour: RGBA, *, keep: bool = False) -> None:
        ctx.set_source_rgba(*colour)
        ctx.fill_preserve() if keep else ctx.fill()

    def _stroke(self, ctx: Any, width: float, colour: RGBA | None = None) -> None:
        ctx.set_source_rgba(*(colour or self.line))
        ctx.set_line_width(width)
        ctx.stroke()

    # -- the whole figure --

    # The figure is drawn in layers the renderer caches apart: the body (with the backdrop) and
    # the head move up and down by whole pixels as it breathes and hops (a translation of the
    # cached picture), the head is redrawn only when it turns, blinks or changes its expression,
    # and the mouth, which changes with every sound, is drawn alone over it.

    @staticmethod
    def offsets(pose: Pose) -> tuple[float, float]:
        """How far up (design units) the body and the head are moved: breath and hop."""
        return 0.7 * BREATH_UNITS * pose.breath, BREATH_UNITS * pose.breath + pose.hop

    def draw(self, ctx: Any, pose: Pose) -> None:
        """The whole figure in ``pose`` on the canvas (0..SIZE both ways, from the current origin)."""
        body, head = self.offsets(pose)
        ctx.save()
        ctx.translate(0, -body)
        self.draw_body(ctx)
        ctx.restore()
        ctx.save()
        ctx.translate(0, -head)
        self.draw_head(ctx, pose)
        self.draw_mouth(ctx, pose)
        ctx.restore()
        self.draw_extras(ctx, pose)

    def draw_body(self, ctx: Any) -> None:
        """The backdrop and the body (nothing in it changes with the pose)."""
        ctx.save()
        _round(ctx)
        self._backdrop(ctx)
        self._body(ctx)
        ctx.restore()

    def draw_head(self, ctx: Any, pose: Pose) -> None:
        """The head without its mouth, turned by ``pose.tilt`` (not moved up: see :meth:`offsets`)."""
        ctx.save()
        _round(ctx)
        self._turn(ctx, pose)
        self._hair_back(ctx)
        self._head(ctx)
        self._face(ctx, pose)
        self._hair_front(ctx)
        expr = _expression(pose)
        for side in (-1, 1):  # over the fringe, as drawn characters do: the brows carry the mood
            self._brow(ctx, 200 + side * 44, 146, side, expr)
        self._headphones(ctx)
        ctx.restore()

    def draw_mouth(self, ctx: Any, pose: Pose) -> None:
        """Only the mouth of ``pose``, where :meth:`draw_head` leaves room for it."""
        ctx.save()
        _round(ctx)
        self._turn(ctx, pose)
        self._mouth_at(ctx, pose)
        ctx.restore()

    def draw_extras(self, ctx: Any, pose: Pose) -> None:
        """What floats beside the figure: the thought bubbles."""
        if _expression(pose) == "thinking":
            ctx.save()
            _round(ctx)
            self._thought(ctx)
            ctx.restore()

    @staticmethod
    def _turn(ctx: Any, pose: Pose) -> None:
        ctx.translate(200, 300)           # the head turns about the neck
        ctx.rotate(math.radians(pose.tilt))
        ctx.translate(-200, -300)

    def _mouth_at(self, ctx: Any, pose: Pose) -> None:
        ctx.save()  # the mouth is drawn larger than life: it has to read at 480p
        ctx.translate(*MOUTH)
        ctx.scale(1.35, 1.35)
        self._mouth(ctx, 0, 0, pose.mouth, _expression(pose))
        ctx.restore()

    def _backdrop(self, ctx: Any) -> None:
        ctx.arc(200, 215, 178, 0, 2 * math.pi)
        self._fill(ctx, shade(self.accent, 0.0, 1.0, 0.16))

    def _body(self, ctx: Any) -> None:
        # hood behind the neck
        ctx.move_to(120, 300)
        ctx.curve_to(130, 262, 270, 262, 280, 300)
        ctx.line_to(290, 345)
        ctx.line_to(110, 345)
        ctx.close_path()
        self._fill(ctx, shade(self.outfit, -0.08))
        # neck
        ctx.rectangle(178, 262, 44, 60)
        self._fill(ctx, self.skin_shadow)
        # shoulders and chest
        ctx.move_to(28, 400)
        ctx.curve_to(34, 338, 80, 312, 150, 302)
        ctx.curve_to(170, 326, 230, 326, 250, 302)
        ctx.curve_to(320, 312, 366, 338, 372, 400)
        ctx.close_path()
        self._fill(ctx, self.outfit, keep=True)
        self._stroke(ctx, 3.0, shade(self.outfit, -0.15))
        # the hood's rim around the neck
        ctx.move_to(148, 302)
        ctx.curve_to(165, 338, 235, 338, 252, 302)
        self._stroke(ctx, 9.0, shade(self.outfit, 0.1))
        # drawstrings with accent tips
        for x, dx in ((182, -4), (218, 4)):
            ctx.move_to(x, 328)
            ctx.curve_to(x + dx, 348, x + dx * 2, 362, x + dx, 378)
            self._stroke(ctx, 4.0, shade(self.outfit, 0.3, 0.5))
            ctx.arc(x + dx, 381, 5, 0, 2 * math.pi)
            self._fill(ctx, self.accent)
        # a chest emblem: a play triangle in a circle (a streamer's badge)
        ctx.arc(300, 362, 17, 0, 2 * math.pi)
        self._fill(ctx, self.accent)
        ctx.move_to(294, 352)
        ctx.line_to(310, 362)
        ctx.line_to(294, 372)
        ctx.close_path()
        self._fill(ctx, self.outfit)

    def _hair_back(self, ctx: Any) -> None:
        ctx.move_to(102, 170)
        ctx.curve_to(96, 90, 150, 52, 200, 52)
        ctx.curve_to(250, 52, 304, 90, 298, 170)
        ctx.curve_to(304, 220, 296, 262, 282, 286)
        ctx.line_to(118, 286)
        ctx.curve_to(104, 262, 96, 220, 102, 170)
        ctx.close_path()
        self._fill(ctx, shade(self.hair, -0.12))

    def _head_path(self, ctx: Any) -> None:
        ctx.move_to(200, 72)
        ctx.curve_to(258, 72, 290, 110, 290, 168)
        ctx.curve_to(290, 222, 256, 270, 200, 280)
        ctx.curve_to(144, 270, 110, 222, 110, 168)
        ctx.curve_to(110, 110, 142, 72, 200, 72)
        ctx.close_path()

    def _head(self, ctx: Any) -> None:
        self._head_path(ctx)
        self._fill(ctx, self.skin, keep=True)
        self._stroke(ctx, 3.5)

    # -- the face --

    def _face(self, ctx: Any, pose: Pose) -> None:
        expr = _expression(pose)
        # cheeks
        blush = 0.55 if expr == "happy" else 0.28
        for x in (148, 252):
            ctx.save()
            ctx.translate(x, 212)
            ctx.scale(1.0, 0.55)
            ctx.arc(0, 0, 17, 0, 2 * math.pi)
            ctx.restore()
            self._fill(ctx, (*self.blush[:3], blush))
        for side in (-1, 1):
            self._eye(ctx, 200 + side * 44, 180, side, expr, pose.eyes)
        # nose: a small soft hook
        ctx.move_to(202, 196)
        ctx.curve_to(206, 204, 204, 209, 198, 209)
        self._stroke(ctx, 2.5, self.skin_shadow)
        if expr == "sad":
            ctx.move_to(252, 200)
            ctx.curve_to(262, 216, 262, 226, 252, 226)
            ctx.curve_to(242, 226, 242, 216, 252, 200)
            ctx.close_path()
            self._fill(ctx, (0.55, 0.8, 1.0, 0.95), keep=True)
            self._stroke(ctx, 2.0, (0.3, 0.55, 0.85, 1.0))

    def _eye(self, ctx: Any, x: float, y: float, side: int, expr: str, open_: float) -> None:
        if expr == "happy" or open_ <= 0.15:
            # closed: an arc, upward (^ ^) when happy, a lid line when blinking
            ctx.move_to(x - 18, y + (6 if expr == "happy" else 2))
            if expr == "happy":
                ctx.curve_to(x - 10, y - 12, x + 10, y - 12, x + 18, y + 6)
            else:
                ctx.curve_to(x - 8, y + 8, x + 8, y + 8, x + 18, y + 2)
            self._stroke(ctx, 5.0)
            return
        wide = expr == "surprised"
        rx, ry = (20.0, 25.0) if wide else (17.0, 21.0)
        ry *= max(0.15, open_)
        if expr == "sad":
            ry *= 0.8
        # white of the eye
        ctx.save()
        ctx.translate(x, y)
        ctx.scale(rx, ry)
        ctx.arc(0, 0, 1, 0, 2 * math.pi)
        ctx.restore()
        self._fill(ctx, (1, 1, 1, 1), keep=True)
        ctx.save()
        ctx.clip()
        # iris and pupil (looking up and aside when thinking)
        lx, ly = (7.0 * 1, -8.0) if expr == "thinking" else (0.0, 1.0)
        iris_r = 9.0 if wide else 13.0
        ctx.arc(x + lx, y + ly, iris_r, 0, 2 * math.pi)
        self._fill(ctx, self.iris)
        ctx.arc(x + lx, y + ly, iris_r * 0.5, 0, 2 * math.pi)
        self._fill(ctx, shade(self.iris, -0.35))
        ctx.arc(x + lx + 4, y + ly - 5, iris_r * 0.32, 0, 2 * math.pi)
        self._fill(ctx, (1, 1, 1, 0.95))
        ctx.restore()
        # upper lid line (drooping to the outside when sad)
        ctx.save()
        ctx.translate(x, y)
        ctx.scale(rx, ry)
        ctx.arc(0, 0, 1, math.pi * 1.05, math.pi * 1.95)
        ctx.restore()
        self._stroke(ctx, 4.5)
        if expr == "sad":  # heavy lids, inner corner raised
            ctx.move_to(x - rx - 2, y - ry * (0.2 if side < 0 else 0.9))
            ctx.line_to(x + rx + 2, y - ry * (0.9 if side < 0 else 0.2))
            ctx.line_to(x + rx + 2, y - ry - 4)
            ctx.line_to(x - rx - 2, y - ry - 4)
            ctx.close_path()
            self._fill(ctx, self.skin, keep=True)
            ctx.new_path()
            ctx.move_to(x - rx - 2, y - ry * (0.2 if side < 0 else 0.9))
            ctx.line_to(x + rx + 2, y - ry * (0.9 if side < 0 else 0.2))
            self._stroke(ctx, 4.0)

    def _brow(self, ctx: Any, x: float, y: float, side: int, expr: str) -> None:
        inner, outer = x - side * 16, x + side * 18   # inner end near the nose
        if expr == "happy":
            pts = ((inner, y - 4), (x, y - 14), (outer, y - 6))
        elif expr == "surprised":
            pts = ((inner, y - 14), (x, y - 24), (outer, y - 14))
        elif expr == "sad":
            pts = ((inner, y - 10), (x, y - 4), (outer, y + 4))
        elif expr == "thinking":
            pts = ((inner, y - 14), (x, y - 20), (outer, y - 12)) if side > 0 \
                else ((inner, y + 2), (x, y), (outer, y - 2))
        else:
            pts = ((inner, y), (x, y - 6), (outer, y - 2))
        ctx.move_to(*pts[0])
        ctx.curve_to(pts[1][0], pts[1][1], pts[1][0], pts[1][1], *pts[2])
        ctx.set_source_rgba(*self.skin)
        ctx.set_line_width(10.0)
        ctx.stroke_preserve()  # a skin-coloured edge lifts the brow off the fringe
        self._stroke(ctx, 6.5, self.line)

    # -- the mouth: one drawing per Rhubarb shape; the idle (X) mouth follows the expression --

    def _mouth(self, ctx: Any, x: float, y: float, shape: str, expr: str) -> None:
        lip = shade(self.skin, -0.38, 1.2)
        if shape == "X":
            self._idle_mouth(ctx, x, y, expr, lip)
            return
        if shape == "A":   # lips pressed
            ctx.move_to(x - 16, y)
            ctx.curve_to(x - 6, y + 3, x + 6, y + 3, x + 16, y)
            self._stroke(ctx, 5.0, lip)
            return
        # open shapes: (half width, height above the line, height below, roundness)
        w, up, down = {"B": (18, 4, 5), "C": (20, 7, 13), "D": (22, 9, 22), "E": (15, 7, 13),
                       "F": (9, 7, 9), "G": (17, 4, 6), "H": (19, 7, 15)}.get(shape, (18, 6, 10))
        smile = 3.0 if expr == "happy" else (-2.0 if expr == "sad" else 0.0)
        ctx.move_to(x - w, y - smile)
        ctx.curve_to(x - w * 0.6, y - up, x + w * 0.6, y - up, x + w, y - smile)
        ctx.curve_to(x + w * 0.8, y + down, x - w * 0.8, y + down, x - w, y - smile)
        ctx.close_path()
        self._fill(ctx, self.mouth_inside, keep=True)
        ctx.save()
        ctx.clip_preserve()
        outline = ctx.copy_path()
        ctx.new_path()
        if shape in ("B", "G"):   # teeth together / upper teeth on the lip
            ctx.rectangle(x - w, y - up - 2, 2 * w, up + (4 if shape == "B" else 3))
            self._fill(ctx, self.teeth)
        elif shape in ("C", "D", "H"):
            ctx.rectangle(x - w, y - up * 0.75 - 2, 2 * w, 5)   # the upper teeth
            self._fill(ctx, self.teeth)
            ctx.save()
            if shape == "H":   # the tongue raised to the teeth
                ctx.translate(x, y - up * 0.75 + 5)
                ctx.scale(w * 0.4, 4)
            else:              # the tongue low in the mouth
                ctx.translate(x, y + down * 0.8)
                ctx.scale(w * 0.5, down * 0.3)
            ctx.arc(0, 0, 1, 0, 2 * math.pi)
            ctx.restore()
            self._fill(ctx, self.tongue)
        ctx.restore()
        ctx.append_path(outline)
        self._stroke(ctx, 3.0, lip)
        if shape == "F":  # pushed-out lips
            ctx.save()
            ctx.translate(x, y + 1)
            ctx.scale(w + 5, (up + down) / 2 + 5)
            ctx.arc(0, 0, 1, 0, 2 * math.pi)
            ctx.restore()
            self._stroke(ctx, 3.5, lip)
        if shape == "G":  # the lower lip tucked under the teeth
            ctx.move_to(x - w * 0.7, y + down + 2)
            ctx.curve_to(x - 4, y + down + 6, x + 4, y + down + 6, x + w * 0.7, y + down + 2)
            self._stroke(ctx, 3.5, lip)

    def _idle_mouth(self, ctx: Any, x: float, y: float, expr: str, lip: RGBA) -> None:
        if expr == "happy":      # a wide open smile
            ctx.move_to(x - 24, y - 6)
            ctx.curve_to(x - 10, y - 2, x + 10, y - 2, x + 24, y - 6)
            ctx.curve_to(x + 18, y + 20, x - 18, y + 20, x - 24, y - 6)
            ctx.close_path()
            self._fill(ctx, self.mouth_inside, keep=True)
            ctx.save()
            ctx.clip_preserve()
            outline = ctx.copy_path()
            ctx.new_path()
            ctx.rectangle(x - 24, y - 8, 48, 7)
            self._fill(ctx, self.teeth)
            ctx.arc(x, y + 15, 11, 0, 2 * math.pi)
            self._fill(ctx, self.tongue)
            ctx.restore()
            ctx.append_path(outline)
            self._stroke(ctx, 3.0, lip)
        elif expr == "surprised":  # a small "o"
            ctx.save()
            ctx.translate(x, y + 4)
            ctx.scale(9, 12)
            ctx.arc(0, 0, 1, 0, 2 * math.pi)
            ctx.restore()
            self._fill(ctx, self.mouth_inside, keep=True)
            self._stroke(ctx, 3.0, lip)
        elif expr == "sad":      # a frown
            ctx.move_to(x - 18, y + 8)
            ctx.curve_to(x - 8, y - 4, x + 8, y - 4, x + 18, y + 8)
            self._stroke(ctx, 4.5, lip)
        elif expr == "thinking":  # "hmm": pulled to one side
            ctx.move_to(x - 8, y + 3)
            ctx.curve_to(x, y + 1, x + 10, y - 1, x + 20, y - 5)
            self._stroke(ctx, 4.5, lip)
        else:                    # a soft smile
            ctx.move_to(x - 17, y - 2)
            ctx.curve_to(x - 8, y + 8, x + 8, y + 8, x + 17, y - 2)
            self._stroke(ctx, 4.5, lip)

    # -- hair and headphones in front --

    def _hair_front(self, ctx: Any) -> None:
        hair, dark = self.hair, shade(self.hair, -0.2)
        # the fringe: a cap with three pointed locks over the forehead
        ctx.move_to(104, 176)
        ctx.curve_to(96, 96, 146, 60, 200, 60)
        ctx.curve_to(256, 60, 306, 96, 296, 176)
        ctx.curve_to(286, 150, 278, 132, 266, 120)
        ctx.curve_to(262, 138, 252, 150, 240, 156)      # right lock
        ctx.curve_to(240, 136, 232, 122, 222, 114)
        ctx.curve_to(210, 136, 190, 148, 168, 152)      # middle lock, swept
        ctx.curve_to(178, 136, 180, 124, 176, 114)
        ctx.curve_to(160, 134, 140, 146, 122, 150)      # left lock
        ctx.curve_to(126, 140, 126, 130, 124, 120)
        ctx.curve_to(114, 134, 108, 152, 104, 176)
        ctx.close_path()
        self._fill(ctx, hair, keep=True)
        self._stroke(ctx, 3.5)
        # a shine across the crown
        ctx.move_to(150, 84)
        ctx.curve_to(172, 74, 210, 72, 236, 80)
        self._stroke(ctx, 6.0, shade(hair, 0.18, 0.9, 0.8))
        # the single upright lock (the silhouette's mark)
        ctx.move_to(196, 64)
        ctx.curve_to(186, 34, 200, 10, 226, 6)
        ctx.curve_to(214, 20, 210, 40, 214, 64)
        ctx.close_path()
        self._fill(ctx, hair, keep=True)
        self._stroke(ctx, 3.0)
        ctx.move_to(204, 58)
        ctx.curve_to(200, 40, 206, 26, 216, 16)
        self._stroke(ctx, 2.5, dark)

    def _headphones(self, ctx: Any) -> None:
        band, rim = self.accent, shade(self.accent, -0.25, 1.0)
        ctx.move_to(104, 164)
        ctx.curve_to(96, 60, 304, 60, 296, 164)
        self._stroke(ctx, 13.0, shade(self.accent, -0.3))
        ctx.move_to(104, 164)
        ctx.curve_to(96, 60, 304, 60, 296, 164)
        self._stroke(ctx, 7.0, band)
        for x in (98, 302):
            ctx.save()
            ctx.translate(x, 186)
            ctx.scale(24, 36)
            ctx.arc(0, 0, 1, 0, 2 * math.pi)
            ctx.restore()
            self._fill(ctx, band, keep=True)
            self._stroke(ctx, 3.5, self.line)
            ctx.save()
            ctx.translate(x, 186)
            ctx.scale(13, 24)
            ctx.arc(0, 0, 1, 0, 2 * math.pi)
            ctx.restore()
            self._fill(ctx, rim)
        # a light on the right cup: on air
        ctx.arc(302, 186, 5, 0, 2 * math.pi)
        self._fill(ctx, (1.0, 0.36, 0.36, 1.0))

    def _thought(self, ctx: Any) -> None:
        for x, y, r in ((312, 86, 7), (332, 58, 10), (360, 26, 14)):
            ctx.arc(x, y, r, 0, 2 * math.pi)
            self._fill(ctx, (1, 1, 1, 0.92), keep=True)
            self._stroke(ctx, 2.5)
