"""Drawing a scene into a cairo image with Pango: pure (no X), so it is testable as pixels.

Why Pango (through the cffi bindings pangocffi/pangocairocffi, with cairocffi): it is the
text stack of GNOME and Firefox on Linux: HarfBuzz shaping (Arabic joining, Indic, combining
marks), the Unicode bidi algorithm (Hebrew and Arabic right to left inside left-to-right
text), fontconfig fallback per character (Noto CJK for Han/Kana/Hangul, Noto Color Emoji),
colour emoji through cairo, wrapping and ellipsizing to a box. Pillow with raqm shapes one
font at a time (no per-character fallback); Tk 8.6 neither shapes Arabic nor draws colour
emoji. The cffi bindings load Debian's own libpango/libcairo at run time: nothing to compile.

Viewer text is data: layouts get it with ``set_text`` (never markup), styles come from
attribute lists on byte ranges, and nothing is ever passed through ``str.format``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cairocffi as cairo
import pangocairocffi as pangocairo
import pangocffi as pango

from ..core.sanitize import clean_text
from .avatar.view import AvatarView
from .model import SceneState
from .template import (
    AlertRegion,
    AvatarRegion,
    CaptionRegion,
    ChatRegion,
    ContentRegion,
    ImageRegion,
    Scene,
    StatsRegion,
    TextRegion,
    TitleRegion,
)

DESIGN_HEIGHT = 720.0
Rect = tuple[int, int, int, int]


def rgb(colour: str) -> tuple[float, float, float, float]:
    value = colour.lstrip("#")
    parts = [int(value[i:i + 2], 16) / 255 for i in range(0, len(value), 2)]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)


def uptime_text(live_since: float | None, now: float) -> str:
    if not live_since:
        return "offline"
    minutes = max(0, int(now - live_since) // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def money(value: float | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"${value / size:.1f}{unit}"
    return f"${value:.0f}"


def box_rect(box: tuple[float, float, float, float], width: int, height: int) -> Rect:
    """A region's ``box`` ([x, y, w, h] in percent of the screen) in pixels."""
    x, y, w, h = box
    left, top = round(x * width / 100), round(y * height / 100)
    right, bottom = round((x + w) * width / 100), round((y + h) * height / 100)
    return left, top, max(1, right - left), max(1, bottom - top)


@dataclass
class Painter:
    """Draws regions of a scene onto ``surface`` (an RGB24 image of the whole screen)."""

    width: int
    height: int
    images: Callable[[str], Any] = lambda name: None   # file name -> cairo ImageSurface or None
    avatar: AvatarView = field(default_factory=AvatarView)
    mono: float = 0.0          # time.monotonic of the frame being drawn (the avatar's clock)

    def __post_init__(self) -> None:
        self.surface = cairo.ImageSurface(cairo.FORMAT_RGB24, self.width, self.height)
        self.ctx = cairo.Context(self.surface)
        self.scale = self.height / DESIGN_HEIGHT

    def inner(self, region: Any) -> Rect:
        """The region's rectangle less its padding."""
        rect = self.rect(region.box)
        pad = round(region.padding * self.scale)
        return (rect[0] + pad, rect[1] + pad, max(1, rect[2] - 2 * pad), max(1, rect[3] - 2 * pad))

    # -- geometry --

    def rect(self, box: tuple[float, float, float, float]) -> Rect:
        return box_rect(box, self.width, self.height)

    # -- what a region shows: equal keys = equal pixels (redraw only on change) --

    def key(self, region: Any, state: SceneState, now: float) -> tuple[object, ...]:
        if isinstance(region, TitleRegion):
            return (state.title, state.topic)
        if isinstance(region, ChatRegion):
            return tuple((c.user, c.text, c.own, c.answering) for c in state.chat[-region.max_lines:])
        if isinstance(region, CaptionRegion):
            return (state.caption,)
        if isinstance(region, StatsRegion):
            s = state.stats
            return (s.viewers, uptime_text(s.live_since, now), money(s.market_cap))
        if isinstance(region, AlertRegion):
            return tuple((a.id, a.kind, a.text) for a in state.alerts if a.until > now)[-1:]
        if isinstance(region, TextRegion):
            return (state.feeds.get(region.feed, "") if region.feed else region.text,)
        if isinstance(region, ImageRegion):
            return (region.file, id(self.images(region.file)))
        if isinstance(region, AvatarRegion):
            return self.avatar.key(region, state, self.mono, self.inner(region))
        return ()

    # -- drawing --

    def clear(self, scene: Scene, rect: Rect) -> None:
        ctx = self.ctx
        ctx.save()
        ctx.rectangle(*rect)
        ctx.set_source_rgba(*rgb(scene.background))
        ctx.fill()
        ctx.restore()

    def draw(self, scene: Scene, region: Any, state: SceneState, now: float) -> Rect:
        """Draw one region (background first); returns the rectangle it covers."""
        rect = self.rect(region.box)
        ctx = self.ctx
        ctx.save()
        ctx.rectangle(*rect)
        ctx.clip()
        if region.background:
            ctx.set_source_rgba(*rgb(region.background))
            ctx.paint()
        inner = self.inner(region)
        handler = _HANDLERS.get(type(region))
        if handler is not None:
            handler(self, region, state, now, inner)
        ctx.restore()
        return rect

    def layout(self, text: str, region: Any, width: int, *, size: float | None = None,
               max_height: int | None = None, bold: bool = False, align: str | None = None) -> Any:
        layout = pangocairo.create_layout(self.ctx)
        font = pango.FontDescription()
        font.family = region.font
        font.set_absolute_size(pango.units_from_double((size or region.size) * self.scale))
        if bold:
            font.weight = pango.Weight.BOLD
        layout.font_description = font
        layout.width = pango.units_from_double(width)
        layout.wrap = pango.WrapMode.WORD_CHAR
        layout.ellipsize = pango.EllipsizeMode.END
        if max_height is not None:
            layout.height = pango.units_from_double(max_height)
        layout.alignment = {"left": pango.Alignment.LEFT, "center": pango.Alignment.CENTER,
                            "right": pango.Alignment.RIGHT}[align or region.align]
        layout.text = text  # plain text: never markup
        return layout

    def show(self, layout: Any, x: float, y: float, colour: str) -> None:
        self.ctx.move_to(x, y)
        self.ctx.set_source_rgba(*rgb(colour))
        pangocairo.show_layout(self.ctx, layout)

    @staticmethod
    def height_of(layout: Any) -> float:
        return pango.units_to_double(layout.get_size()[1])


def _styled(painter: Painter, region: Any, head: str, body: str, head_colour: str, width: int,
            max_height: int) -> Any:
    """``head`` (bold, its own colour) then ``body``: styles on byte ranges, text stays data."""
    # each part is a bidi isolate (FSI..PDI) in a left-to-right line (LRM): an Arabic name
    # before Latin text no longer turns the whole line right to left (or mirrors its "<")
    head_part = f"\u200e\u2068{head}\u2069" if head else ""
    text = f"{head_part}  \u2068{body}\u2069" if head else body
    layout = painter.layout(text, region, width, max_height=max_height)
    attrs = pango.AttrList()
    if head:
        end = len(head_part.encode("utf-8"))
        r, g, b, _ = rgb(head_colour)
        attrs.insert(pango.Attribute.from_foreground_color(int(r * 65535), int(g * 65535), int(b * 65535), 0, end))
        attrs.insert(pango.Attribute.from_weight(pango.Weight.BOLD, 0, end))
    layout.attributes = attrs
    return layout


def _title(p: Painter, region: TitleRegion, state: SceneState, now: float, box: Rect) -> None:
    x, y, w, h = box
    name = p.layout(clean_text(state.title, 120), region, w, bold=True, max_height=h)
    p.show(name, x, y, region.color)
    room = h - p.height_of(name)
    if state.topic and room > 0:
        text, size = clean_text(state.topic, 200), region.size * 0.7
        topic = p.layout(text, region, w, size=size, max_height=int(room))
        if p.height_of(topic) > room:  # one line taller than the room left: smaller, never cut
            topic = p.layout(text, region, w, size=size * room / p.height_of(topic), max_height=int(room))
        if p.height_of(topic) <= room:
            p.show(topic, x, y + p.height_of(name), region.topic_color)


def _chat(p: Painter, region: ChatRegion, state: SceneState, now: float, box: Rect) -> None:
    x, y, w, h = box
    bottom: float = y + h
    gap = 6 * p.scale
    for line in reversed(state.chat[-region.max_lines:]):
        layout = _styled(p, region, clean_text(line.user, 40), clean_text(line.text, 600),
                         region.own_color if line.own else region.user_color, w, max_height=int(h / 3))
        height = p.height_of(layout)
        if bottom - height < y:
            break
        top = bottom - height
        if line.answering:
            p.ctx.rectangle(x - 4 * p.scale, top - 2 * p.scale, w + 8 * p.scale, height + 4 * p.scale)
            p.ctx.set_source_rgba(*rgb(region.answering_background))
            p.ctx.fill()
        p.show(layout, x, top, region.color)
        bottom = top - gap


def _caption(p: Painter, region: CaptionRegion, state: SceneState, now: float, box: Rect) -> None:
    x, y, w, h = box
    if state.caption:
        layout = p.layout(clean_text(state.caption, 600), region, w, max_height=h)
        p.show(layout, x, y + max(0.0, (h - p.height_of(layout)) / 2), region.color)


def _stats(p: Painter, region: StatsRegion, state: SceneState, now: float, box: Rect) -> None:
    x, y, w, h = box
    s = state.stats
    viewers = "–" if s.viewers is None else str(s.viewers)
    text = f"👀 {viewers} watching    ⏱ {uptime_text(s.live_since, now)}    📈 {money(s.market_cap)}"
    p.show(p.layout(text, region, w, max_height=h), x, y, region.color)


def _alert(p: Painter, region: AlertRegion, state: SceneState, now: float, box: Rect) -> None:
    x, y, w, h = box
    active = [a for a in state.alerts if a.until > now]
    if active:
        alert = active[-1]
        p.ctx.rectangle(x, y, w, h)
        p.ctx.set_source_rgba(*rgb("#f25f5c"))
        p.ctx.fill()
        text = _styled(p, region, clean_text(alert.kind, 20).upper(), clean_text(alert.text, 200),
                       "#ffe066", w - 16, max_height=h)
        p.show(text, x + 8, y + max(0.0, (h - p.height_of(text)) / 2), region.color)


def _text(p: Painter, region: TextRegion, state: SceneState, now: float, box: Rect) -> None:
    x, y, w, h = box
    text = state.feeds.get(region.feed, "") if region.feed else region.text
    if text:
        p.show(p.layout(text, region, w, max_height=h), x, y, region.color)


def _image(p: Painter, region: ImageRegion, state: SceneState, now: float, box: Rect) -> None:
    x, y, w, h = box
    image = p.images(region.file)
    if image is None:
        return
    iw, ih = image.get_width(), image.get_height()
    factor = min(w / iw, h / ih)
    p.ctx.save()
    p.ctx.translate(x + (w - iw * factor) / 2, y + (h - ih * factor) / 2)
    p.ctx.scale(factor, factor)
    p.ctx.set_source_surface(image)
    p.ctx.paint()
    p.ctx.restore()


def _avatar(p: Painter, region: AvatarRegion, state: SceneState, now: float, box: Rect) -> None:
    p.avatar.draw(p.ctx, region, state, p.mono, box)


def _content(p: Painter, region: ContentRegion, state: SceneState, now: float, box: Rect) -> None:
    """The terminal covers this rectangle; under it, a black panel (what shows while it starts)."""
    p.ctx.set_source_rgb(0, 0, 0)
    p.ctx.paint()


_HANDLERS: dict[type, Callable[..., None]] = {
    TitleRegion: _title, ChatRegion: _chat, CaptionRegion: _caption, StatsRegion: _stats,
    AlertRegion: _alert, TextRegion: _text, ImageRegion: _image, ContentRegion: _content,
    AvatarRegion: _avatar}


