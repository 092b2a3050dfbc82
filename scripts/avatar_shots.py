"""The screenshots of docs/avatar.md, drawn by the scene renderer's own code (the same pixels it
puts on the X display, without a display): the expressions (large and as thumbnails), the
mouth shapes, the palettes, the four default scenes at 720p and the live scene scaled to 480p.

    .venv/bin/python scripts/avatar_shots.py docs/
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cairocffi as cairo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.scene.avatar.character import EXPRESSIONS, Character, Pose, Theme  # noqa: E402
from appliance.scene.model import SceneModel, Speech  # noqa: E402
from appliance.scene.renderer import Renderer  # noqa: E402
from appliance.scene.settings import PALETTES, AvatarConfig  # noqa: E402

BACKGROUND = (0.05, 0.067, 0.09)


def label(ctx: cairo.Context, text: str, x: float, y: float, size: float = 16) -> None:
    import pangocairocffi as pangocairo
    import pangocffi as pango
    layout = pangocairo.create_layout(ctx)
    font = pango.FontDescription()
    font.family = "Noto Sans"
    font.set_absolute_size(pango.units_from_double(size))
    layout.font_description = font
    layout.text = text
    ctx.move_to(x, y)
    ctx.set_source_rgb(0.8, 0.84, 0.88)
    pangocairo.show_layout(ctx, layout)


def expressions(out: Path) -> None:
    big, small = 220, 64
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, big * 5, big + 30 + small + 10)
    ctx = cairo.Context(surface)
    ctx.set_source_rgb(*BACKGROUND)
    ctx.paint()
    character = Character(Theme())
    for i, name in enumerate(EXPRESSIONS):
        for size, y in ((big, 0), (small, big + 30)):
            ctx.save()
            ctx.translate(i * big + (big - size) / 2, y)
            ctx.scale(size / 400, size / 400)
            character.draw(ctx, Pose(expression=name))
            ctx.restore()
        label(ctx, name, i * big + 10, big + 4)
    surface.write_to_png(str(out))


def mouths(out: Path) -> None:
    cell = 130
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, cell * 9, cell + 26)
    ctx = cairo.Context(surface)
    ctx.set_source_rgb(*BACKGROUND)
    ctx.paint()
    character = Character(Theme())
    for i, shape in enumerate("XABCDEFGH"):
        ctx.save()
        ctx.rectangle(i * cell, 0, cell, cell)
        ctx.clip()
        ctx.translate(i * cell + cell / 2 - 200 * 2.2, cell / 2 - 244 * 2.2)   # the lower face, enlarged
        ctx.scale(2.2, 2.2)
        character.draw(ctx, Pose(mouth=shape))
        ctx.restore()
        label(ctx, shape, i * cell + cell / 2 - 5, cell + 2)
    surface.write_to_png(str(out))


def palettes(out: Path) -> None:
    size = 180
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, size * len(PALETTES), size)
    ctx = cairo.Context(surface)
    ctx.set_source_rgb(*BACKGROUND)
    ctx.paint()
    for i, (hair, eyes, outfit, accent) in enumerate(PALETTES):
        ctx.save()
        ctx.translate(i * size, 0)
        ctx.scale(size / 400, size / 400)
        Character(Theme(hair=hair, eyes=eyes, outfit=outfit, accent=accent)).draw(ctx, Pose())
        ctx.restore()
    surface.write_to_png(str(out))


def scenes(folder: Path) -> None:
    model = SceneModel(title="HarbourBot", scene="live", avatar=AvatarConfig().state("HarbourBot"),
                       mono=lambda: 1000.0)
    model.set_topic("Solving chess puzzles live with chat")
    for i, (user, text) in enumerate([("marina", "hello from the harbour!"), ("bob", "what are we building today?"),
                                      ("kai", "can you explain the last move?")]):
        model.chat(user, text, id=str(i))
    model.chat("HarbourBot", "Welcome marina! Pull up a chair.", own=True)
    model.caption("I think the knight goes to f5, and then it is mate.")
    model.feed("show", "Chess puzzle starts at nine")
    model.feed("welcome", "Today: chess puzzles with chat")
    model.stats(viewers=42, live_since=time.time() - 3725, market_cap=125000)
    for name in ("live", "starting", "brb", "ending"):
        state = model.snapshot().model_copy(update={"scene": name})
        if name == "live":  # mid-sentence: the mouth open
            state.avatar.speech = Speech(id="s", start=999.0, cues=[(0.0, "D")])
        renderer = Renderer(ROOT / "overlays", 1280, 720, mono=lambda: 1000.0)
        renderer.set_state(state)
        renderer.render()
        renderer.painter.surface.write_to_png(str(folder / f"avatar-scene-{name}.png"))
        if name == "live":
            small = cairo.ImageSurface(cairo.FORMAT_RGB24, 854, 480)
            ctx = cairo.Context(small)
            ctx.scale(854 / 1280, 480 / 720)
            ctx.set_source_surface(renderer.painter.surface)
            ctx.get_source().set_filter(cairo.FILTER_GOOD)
            ctx.paint()
            small.write_to_png(str(folder / "avatar-scene-live-480p.png"))


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else ROOT / "docs")
    folder.mkdir(parents=True, exist_ok=True)
    expressions(folder / "avatar-expressions.png")
    mouths(folder / "avatar-mouths.png")
    palettes(folder / "avatar-palettes.png")
    scenes(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
