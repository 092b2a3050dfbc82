"""The avatar without processes: lip-sync cues (espeak-ng's phonemes, the amplitude envelope),
motion (mouth on the audio clock, blinks, quantized idle), the scene model's avatar events,
palettes, packs (PNGTuber mappings, broken packs), moods from the brains, and the renderer
redrawing only the avatar's rectangle, only on change."""

from __future__ import annotations

import itertools
import math
import random
import struct
import time
import wave
from pathlib import Path

import cairocffi as cairo
import pytest

from appliance.core.errors import ConfigError
from appliance.scene.avatar.character import EXPRESSIONS, Character, Pose, Theme
from appliance.scene.avatar.motion import BLINK, Blinker, Motion, mouth_at
from appliance.scene.avatar.pack import PackStore, load_pack
from appliance.scene.model import AvatarState, SceneModel, Speech
from appliance.scene.renderer import Renderer
from appliance.scene.settings import AvatarConfig
from appliance.voice.lipsync import SHAPES, Cue, envelope_cues, merge, phoneme_cues, viseme, wav_levels

REPO = Path(__file__).resolve().parents[2]


# --- lip-sync cues ---------------------------------------------------------------------------

def test_phonemes_map_to_rhubarb_shapes():
    assert [viseme(p) for p in ("m", "b", "p")] == ["A", "A", "A"]
    assert [viseme(p) for p in ("f", "v")] == ["G", "G"]
    assert [viseme(p) for p in ("aɪ", "ɑː", "a")] == ["D", "D", "D"]
    assert [viseme(p) for p in ("æ", "ɛ", "ə")] == ["C", "C", "C"]
    assert [viseme(p) for p in ("uː", "oʊ", "w")] == ["F", "F", "F"]
    assert [viseme(p) for p in ("ɔː", "ɜː", "ɹ")] == ["E", "E", "E"]
    assert [viseme(p) for p in ("l", "əl")] == ["H", "H"]
    assert [viseme(p) for p in ("s", "t", "iː", "k")] == ["B", "B", "B", "B"]
    assert viseme("") == "X" and viseme("ˈaɪ") == "D" and viseme("?!") == "B"


def test_cues_drop_flickers_and_repeats_and_keep_the_first_sound_on_time():
    cues = phoneme_cues([(0.012, "aɪ"), (0.030, "s"), (0.20, "iː"), (0.25, "m"), (0.26, "ə"), (0.4, "")], 0.5)
    assert cues[0].t == 0.012  # the first sound starts the mouth on time (a flicker gives way, not its time)
    assert all(b.t - a.t >= 0.04 for a, b in itertools.pairwise(cues))
    assert all(a.shape != b.shape for a, b in itertools.pairwise(cues))
    assert cues[-1].shape == "X"
    assert merge([Cue(0, "X"), Cue(0.1, "X"), Cue(0.2, "D")]) == [Cue(0, "X"), Cue(0.2, "D")]


def test_envelope_opens_with_loudness_and_rests_in_silence():
    levels = [-90.0] * 10 + [-10.0] * 10 + [-20.0] * 10 + [-90.0] * 10
    cues = envelope_cues(levels, 0.02)
    shapes = {c.shape for c in cues}
    assert {"D", "X"} <= shapes and cues[-1].shape == "X"
    assert next(c.t for c in cues if c.shape != "X") == pytest.approx(0.2)


def test_wav_levels_of_a_tone_and_silence(tmp_path: Path):
    path = tmp_path / "t.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        frames = [0] * 800 + [int(16000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(800)]
        wav.writeframes(struct.pack(f"<{len(frames)}h", *frames))
    levels = wav_levels(path, 0.02)
    assert len(levels) == 10
    assert max(levels[:5]) < -100 and min(levels[5:]) > -10


def test_the_wire_alphabet_is_the_scene_models():
    for shape in SHAPES:
        Speech(cues=[(0.0, shape)])
    with pytest.raises(ValueError):
        Speech(cues=[(0.0, "Z")])


# --- motion ----------------------------------------------------------------------------------

def speaking(start: float, lead: float = 0.0) -> AvatarState:
    return AvatarState(lead_s=lead, speech=Speech(id="u:0", start=start, cues=[(0.1, "D"), (0.3, "A"), (0.5, "X")]))


def test_the_mouth_follows_the_audio_clock_a_lead_ahead():
    avatar = speaking(100.0)
    assert mouth_at(avatar, 99.0) == ("X", 100.1)
    assert mouth_at(avatar, 100.15) == ("D", 100.3)
    assert mouth_at(avatar, 100.6) == ("X", None)
    early = speaking(100.0, lead=0.02)
    assert mouth_at(early, 100.085)[0] == "D" and mouth_at(early, 100.075)[0] == "X"
    assert mouth_at(AvatarState(), 5.0) == ("X", None)


def test_blinks_come_every_two_to_six_seconds_and_last_a_moment():
    blinker = Blinker(random.Random(7))
    t, starts = 0.0, []
    while t < 120:
        if blinker.eyes(t) < 1 and (not starts or t - starts[-1] > 1):
            starts.append(t)
        t += 0.01
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) > 15 and all(2.0 <= g <= 6.0 + BLINK[-1][0] + 0.02 for g in gaps), gaps
    start = blinker.next_change(200.0)
    assert blinker.eyes(start + 0.07) == 0.0 and blinker.eyes(start + 0.2) == 1.0


def test_moods_last_then_the_region_expression_returns():
    motion = Motion(random.Random(1))
    avatar = AvatarState(mood="surprised", mood_until=10.0)
    assert motion.pose(avatar, "happy", 9.0, 0.65).expression == "surprised"
    assert motion.pose(avatar, "happy", 10.5, 0.65).expression == "happy"
    assert motion.next_change(avatar, "happy", 9.9999, 0.65) <= 10.0


def test_idle_motion_moves_by_whole_pixels_and_sleeps_until_it_changes():
    motion = Motion(random.Random(2))
    scale = 0.65
    poses = {motion.idle("neutral", t / 100, scale) for t in range(0, 1000)}
    assert 5 <= len(poses) <= 60                     # a few distinct poses over 10 s, not one per frame
    for breath, _ in poses:
        assert round(breath * 3.2 * scale, 6) == round(breath * 3.2 * scale)  # whole pixels
    now = 3.0
    nxt = motion.next_change(AvatarState(), "neutral", now, scale)
    assert now < nxt <= now + 1.0
    before = motion.idle("neutral", nxt - 1 / 60, scale)
    assert motion.idle("neutral", now, scale) == before or nxt - now < 1 / 60 + 1e-9


# --- the scene model -------------------------------------------------------------------------

def test_voice_events_drive_the_mouth_and_moods_and_reactions_the_face():
    mono = [50.0]
    model = SceneModel(mono=lambda: mono[0], mood_s=5)
    model.handle("sentence_started", {"id": "u1", "index": 0, "sentence": "I see.", "audible_at": 50.3,
                                      "cues": [[0.01, "D"], [0.3, "X"]]})
    speech = model.snapshot().avatar.speech
    assert speech is not None and speech.start == 50.3 and speech.cues[0] == (0.01, "D")
    assert model.snapshot().caption == ""              # the caption waits for its sound, as the mouth does
    time.sleep(0.4)
    assert model.snapshot().caption == "I see."
    model.handle("sentence_finished", {"id": "u1", "index": 7})     # another sentence's end: no effect
    assert model.snapshot().avatar.speech is not None
    model.handle("sentence_finished", {"id": "u1", "index": 0})
    assert model.snapshot().avatar.speech is None
    model.handle("sentence_started", {"id": "u2", "index": 0, "audible_at": 52.0, "cues": [[0, "nope"]]})
    assert model.snapshot().avatar.speech is None                    # malformed timings: the mouth stays still
    model.handle("mood", {"mood": "sad"})
    assert model.snapshot().avatar.mood == "sad" and model.snapshot().avatar.mood_until == 55.0
    model.handle("mood", {"mood": "furious"})                        # not an expression: ignored
    assert model.snapshot().avatar.mood == "sad"
    model.handle("tip", {"user": {"name": "zoe"}, "text": "0.5 SOL", "id": "t"})
    assert model.snapshot().avatar.mood == "happy" and model.snapshot().avatar.react_at == 50.0
    model.handle("trade", {"user": {"name": "bob"}, "text": "sell 20 USD", "id": "s"})
    assert model.snapshot().avatar.mood == "sad"


def test_palettes_differ_by_agent_name_and_colours_override():
    themes = {AvatarConfig().state(name).theme.hair for name in ("alpha", "beta", "gamma", "delta", "epsilon")}
    assert len(themes) >= 3
    chosen = AvatarConfig.model_validate({"colors": {"hair": "#123456"}, "lead_ms": 20}).state("alpha")
    assert chosen.theme.hair == "#123456" and chosen.lead_s == pytest.approx(0.02)
    with pytest.raises(ValueError, match="hair"):
        AvatarConfig.model_validate({"colors": {"hair": "purple"}})


# --- the drawing -----------------------------------------------------------------------------

def thumbnail(pose: Pose, size: int = 64) -> bytes:
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, size, size)
    ctx = cairo.Context(surface)
    ctx.scale(size / 400, size / 400)
    Character(Theme()).draw(ctx, pose)
    surface.flush()
    return bytes(surface.get_data())


def test_expressions_are_told_apart_in_a_thumbnail():
    shots = {e: thumbnail(Pose(expression=e)) for e in EXPRESSIONS}
    for a in EXPRESSIONS:
        for b in EXPRESSIONS:
            if a < b:
                differ = sum(x != y for x, y in zip(shots[a], shots[b], strict=True)) // 4
                assert differ > 60, f"{a} and {b} differ in only {differ} pixels of a 64 px thumbnail"


def test_open_mouth_shapes_show_a_dark_inside_and_closed_ones_do_not():
    def dark(shape: str) -> int:
        surface = cairo.ImageSurface(cairo.FORMAT_RGB24, 400, 400)
        Character(Theme()).draw_mouth(cairo.Context(surface), Pose(mouth=shape))
        data = bytes(surface.get_data())
        inside = (0x21, 0x12, 0x4A)  # MOUTH_INSIDE as cairo stores it (B, G, R)
        return sum(1 for i in range(0, len(data), 4) if all(abs(data[i + k] - inside[k]) < 6 for k in range(3)))
    counts = {s: dark(s) for s in SHAPES}
    assert counts["X"] == counts["A"] == 0
    assert min(counts[s] for s in "CDEH") > 4 * max(counts[s] for s in "XAB"), counts
    assert counts["D"] > counts["C"] > counts["B"], counts


# --- packs -----------------------------------------------------------------------------------

def png(path: Path, colour: tuple[float, float, float], size: tuple[int, int] = (40, 50)) -> None:
    surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, *size)
    ctx = cairo.Context(surface)
    ctx.set_source_rgb(*colour)
    ctx.paint()
    surface.write_to_png(str(path))


def pngtuber(folder: Path, manifest: str) -> Path:
    folder.mkdir(parents=True)
    for name, colour in (("idle.png", (1, 0, 0)), ("talk.png", (0, 1, 0)), ("idle-blink.png", (0, 0, 1)),
                         ("talk-blink.png", (1, 1, 0))):
        png(folder / name, colour)
    (folder / "avatar.yaml").write_text(manifest)
    return folder


def test_a_pngtuber_pair_maps_onto_every_mouth_shape(tmp_path: Path):
    pack = load_pack(pngtuber(tmp_path / "duo", "mouths: {closed: idle.png, open: talk.png}\n"
                              "blink_mouths: {closed: idle-blink.png, open: talk-blink.png}\n"))
    layers = pack.of("happy")  # no variant: the neutral layers
    idle, talk = layers.mouths["closed"], layers.mouths["open"]
    assert [layers.mouth(s) is idle for s in "XA"] == [True, True]
    assert all(layers.mouth(s) is talk for s in "BCDEFGH")   # no "half": the nearest, open
    assert layers.mouth("D", blinking=True) is layers.blink_mouths["open"]
    assert (pack.width, pack.height) == (40, 50)


def test_a_broken_pack_names_its_file_and_the_last_good_one_stays(tmp_path: Path, caplog):
    folder = pngtuber(tmp_path / "duo", "mouths: {closed: idle.png, open: talk.png}\n")
    store = PackStore(tmp_path, __import__("logging").getLogger("test"))
    good = store.get("duo")
    assert good is not None
    (folder / "avatar.yaml").write_text("mouths: {closed: idle.png, open: missing.png}\n")
    store.reload("duo")
    assert store.get("duo") is good and "missing.png" in store.errors["duo"]
    png(folder / "big.png", (1, 1, 1), (80, 50))
    (folder / "avatar.yaml").write_text("mouths: {closed: idle.png, open: big.png}\n")
    with pytest.raises(ConfigError, match=r"big\.png: 80x50, but the pack's canvas is 40x50"):
        load_pack(folder)
    with pytest.raises(ConfigError, match=r"avatar\.yaml: mouths\.Q"):
        (folder / "avatar.yaml").write_text("mouths: {Q: idle.png}\n")
        load_pack(folder)
    with pytest.raises(ConfigError, match="not valid YAML"):
        (folder / "avatar.yaml").write_text("mouths: [\n")
        load_pack(folder)
    (folder / "link.png").symlink_to(folder / "idle.png")
    (folder / "avatar.yaml").write_text("mouths: {closed: link.png}\n")
    with pytest.raises(ConfigError, match=r"link\.png: mouths\.closed: not a regular file"):
        load_pack(folder)


# --- the renderer: only the avatar's rectangle, only on change --------------------------------

class Output:
    def __init__(self) -> None:
        self.presented: list[list[tuple[int, int, int, int]]] = []

    def present(self, image, rects) -> None:
        self.presented.append(list(rects))

    def set_cover(self, cover: bool) -> None:
        pass

    def place_content(self, rect) -> None:
        pass


def test_the_renderer_redraws_only_the_avatar_and_only_when_its_pose_changes():
    mono = [1000.0]
    output = Output()
    renderer = Renderer(REPO / "overlays", 1280, 720, output=output, clock=lambda: 5000.0, mono=lambda: mono[0])
    model = SceneModel(title="Face", scene="live", mono=lambda: mono[0])
    renderer.set_state(model.snapshot())
    renderer.render()
    avatar = next(r for r in renderer.current().regions if r.type == "avatar")
    rect = renderer.painter.rect(avatar.box)
    assert renderer.render() == []                       # nothing changed: nothing drawn
    frames = 0
    for _ in range(40):                                  # idle: wake when the pose changes
        mono[0] += max(1e-3, renderer.timeout() or 1.0)
        if renderer.render():
            frames += 1
            assert output.presented[-1] == [rect]
    assert frames >= 20                                  # every wake-up had a change to show
    model.handle("sentence_started", {"id": "u", "index": 0, "audible_at": mono[0] + 0.2,
                                      "cues": [[0.0, "D"], [0.1, "A"], [0.2, "C"], [0.3, "X"]]})
    renderer.set_state(model.snapshot())
    renderer.render()                                    # the caption and the avatar
    cues = []
    while mono[0] < model.snapshot().avatar.speech.start + 0.35:
        mono[0] += renderer.timeout() or 0.05
        if renderer.render():
            cues.append(mono[0] - model.snapshot().avatar.speech.start)
            assert output.presented[-1] == [rect]
    lead = model.snapshot().avatar.lead_s
    assert any(abs(t - (0.1 - lead)) < 1e-6 for t in cues) and any(abs(t - (0.2 - lead)) < 1e-6 for t in cues)


def test_a_pack_is_drawn_with_the_mouth_of_each_cue(tmp_path: Path):
    import shutil
    scenes = tmp_path / "overlays"
    shutil.copytree(REPO / "overlays", scenes)
    folder = scenes / "avatars" / "duo"
    folder.mkdir(parents=True)
    png(folder / "closed.png", (0, 0, 1))
    png(folder / "open.png", (1, 0, 0))
    (folder / "avatar.yaml").write_text("mouths: {closed: closed.png, open: open.png}\n")

    def colour_at_centre(shape: str) -> tuple[int, int, int]:
        renderer = Renderer(scenes, 1280, 720, mono=lambda: 10.0)
        state = SceneModel(avatar=AvatarState(pack="duo")).snapshot()
        state.avatar.speech = Speech(id="s", start=0.0, cues=[(0.0, shape)])
        renderer.set_state(state)
        renderer.render()
        region = next(r for r in renderer.current().regions if r.type == "avatar")
        x, y, w, h = renderer.painter.inner(region)
        data, stride = bytes(renderer.painter.surface.get_data()), renderer.painter.surface.get_stride()
        at = (y + h - 20) * stride + (x + w // 2) * 4
        return data[at + 2], data[at + 1], data[at]
    assert colour_at_centre("A") == (0, 0, 255)      # closed: the pack's closed sprite
    assert colour_at_centre("D") == (255, 0, 0)      # wide open: its open sprite
