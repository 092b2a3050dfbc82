"""The scene renderer as a real process on a real Xvfb: hostile text in every built-in scene,
redraw only on change (idle CPU), latency from message to pixels, live template reload with
a broken template, and a hostile socket peer. Screenshots land in $SCENE_SHOTS when set."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from appliance.core.errors import ConfigError
from appliance.scene.draw import Painter
from appliance.scene.model import Alert, ChatLine, SceneState, Stats
from appliance.scene.template import load_scene, parse_scene, scene_files
from tests.support.media import require
from tests.support.scene import REPO, RendererRun

HOSTILE = [
    "مرحبا بكم في البث المباشر",                      # Arabic, RTL, joined
    "שלום לכולם, מה שלומכם?",                          # Hebrew, RTL
    "你好，世界！こんにちは 안녕하세요",                   # CJK
    "emoji 😀🎉👍🏽 and Z\u0351\u0352\u0353 e\u0301",     # colour emoji, combining marks
    "\x1b[2J\x1b[31mANSI red\x1b]0;title\x07 \x07\x08 bell",  # terminal escapes, control characters
    "<b>markup</b> <span foreground='red'>x</span> &amp; {0.__class__} {} %s %n ${HOME}",
    "x" * 10_000,                                      # 10 kB
]
PAINTER = Painter(1280, 720)


def hostile_state(scene: str) -> SceneState:
    chat = [ChatLine(id=str(i), user=HOSTILE[(i + 3) % len(HOSTILE)][:70], text=text[:600], answering=i == 2)
            for i, text in enumerate(HOSTILE)]
    return SceneState(scene=scene, title="SceneTest " + HOSTILE[0], topic=HOSTILE[2] + " " + HOSTILE[5][:100],
                      chat=chat, caption=(HOSTILE[3] + " " + HOSTILE[0])[:600],
                      stats=Stats(viewers=1234, live_since=time.time() - 4000, market_cap=98765.4),
                      alerts=[Alert(id="a", kind="tip", text=HOSTILE[1][:200], until=time.time() + 60)],
                      feeds={"show": HOSTILE[5][:2000], "welcome": HOSTILE[2]})


@pytest.fixture()
def renderer(xvfb_display, tmp_path):
    require("ffmpeg")
    run = RendererRun(xvfb_display, tmp_path)
    yield run
    run.close()


def regions(name: str) -> list:
    return [r for r in load_scene(REPO / "overlays" / f"{name}.yaml").regions if r.type not in ("content", "image")]


def test_built_in_scenes_parse_and_the_terminal_sits_in_the_live_content_region():
    assert {"live", "starting", "brb", "ending"} <= set(scene_files(REPO / "overlays"))
    live = load_scene(REPO / "overlays" / "live.yaml")
    rc = (REPO / "scripts" / "openbox-rc.xml").read_text()
    x, y, w, h = live.content.box
    assert f"<x>{x:g}%</x><y>{y:g}%</y>" in rc and f"<width>{w:g}%</width><height>{h:g}%</height>" in rc


def test_a_broken_template_names_the_file_and_key():
    with pytest.raises(ConfigError, match=r"bad\.yaml: regions\.0\.chat\.box"):
        parse_scene("regions:\n  - {type: chat, box: [90, 0, 20, 10]}\n", "bad")
    with pytest.raises(ConfigError, match=r"bad\.yaml: regions\.0: .*'nope'"):
        parse_scene("regions:\n  - {type: nope, box: [0, 0, 10, 10]}\n", "bad")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+ is not valid YAML"):
        parse_scene("regions: [\n", "bad")


def test_every_scene_renders_hostile_text(renderer: RendererRun, tmp_path: Path):
    shots = Path(os.environ.get("SCENE_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for name in ("live", "starting", "brb", "ending"):
        renderer.send(SceneState(scene=name))
        boxes = [PAINTER.rect(r.box) for r in regions(name)]
        time.sleep(0.3)
        blank = [renderer.pixels(b) for b in boxes]
        renderer.send(hostile_state(name))
        for box, before, region in zip(boxes, blank, regions(name), strict=False):
            if region.type == "text" and not region.feed:
                continue  # static text: the same in both states
            renderer.wait_change(box, before)
        renderer.screenshot(shots / f"scene-{name}-hostile.png")
        assert renderer.proc.poll() is None, renderer.log_text()
    assert "Traceback" not in renderer.log_text()


@pytest.mark.parametrize("name", ["live", "starting", "brb", "ending"])
def test_a_long_title_and_topic_are_never_cut_at_the_region_edge(name: str):
    """Seen in the starting scene's screenshot: the topic line drawn taller than the room the
    title left, its glyphs cut in half by the region's edge. Now it is drawn smaller or not at all."""
    painter = Painter(1280, 720)
    region = next(r for r in regions(name) if r.type == "title")
    scene = load_scene(REPO / "overlays" / f"{name}.yaml")
    left, top, width, height = painter.draw(scene, region, hostile_state(name), time.time())
    data, stride = painter.surface.get_data(), painter.surface.get_stride()
    background = bytes(data[top * stride + left * 4:top * stride + left * 4 + 4])
    last = (top + height - 1) * stride
    edge = [bytes(data[last + 4 * x:last + 4 * x + 4]) for x in range(left, left + width)]
    assert all(px == background for px in edge), "text drawn across the region's bottom edge"


def test_redraws_only_on_change_fast_and_idles(renderer: RendererRun):
    """Messages reach the pixels fast; while nothing happens the renderer only keeps the avatar
    breathing and blinking (its layers cached after one sway cycle): under 1 % of a core."""
    state = hostile_state("live")
    state.alerts = []
    renderer.send(state)
    caption = PAINTER.rect(next(r for r in regions("live") if r.type == "caption").box)
    time.sleep(0.5)
    latencies = []
    for i in range(8):
        before = renderer.pixels(caption)
        state.caption = f"caption number {i}"
        renderer.send(state)
        latencies.append(renderer.wait_change(caption, before))
    assert statistics.median(latencies) < 0.1, latencies
    time.sleep(10)  # one sway cycle of the avatar (appliance/scene/avatar/motion.py): its head turns cached
    cpu0, t0 = renderer.cpu_seconds(), time.monotonic()
    time.sleep(5)
    idle = (renderer.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    print(f"\nscene: message -> pixels median {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms; idle CPU {idle * 100:.2f} % of a core")
    assert idle < 0.01, f"idle CPU {idle:.3%} of a core"


def test_templates_reload_live_and_a_broken_one_keeps_the_last_good(renderer: RendererRun):
    renderer.send(SceneState(scene="live", title="Reload"))
    corner = (1270, 710, 8, 8)  # background only
    time.sleep(0.5)
    before = renderer.pixels(corner)
    live = renderer.scene_dir / "live.yaml"
    tmp = renderer.scene_dir / ".live.tmp"
    tmp.write_text(live.read_text().replace('background: "#0d1117"', 'background: "#802020"'))
    os.replace(tmp, live)  # how editors save
    renderer.wait_change(corner, before)
    good = renderer.pixels(corner)
    live.write_text("regions:\n  - {type: chat, box: [0, 0, 200, 10]}\n")
    deadline = time.monotonic() + 5
    while "scene template broken" not in renderer.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = renderer.log_text()
    assert "scene template broken" in log and "live.yaml: regions.0.chat.box" in log, log[-2000:]
    assert renderer.pixels(corner) == good and renderer.proc.poll() is None


def test_a_hostile_socket_peer_cannot_stop_it(renderer: RendererRun):
    import socket as sk
    for payload in (b"not json\n", b"{" * 300_000, b'{"scene": "../../etc"}\n', b'{"chat": ' + b"[{}]" * 10 + b"}\n"):
        peer = sk.socket(sk.AF_UNIX, sk.SOCK_STREAM)
        peer.connect(str(renderer.socket_path))
        try:
            peer.sendall(payload)
        except OSError:
            pass  # closed on us: fine
        peer.close()
    assert oct(renderer.socket_path.stat().st_mode & 0o777) == "0o600"
    caption = PAINTER.rect(next(r for r in regions("live") if r.type == "caption").box)
    before = renderer.pixels(caption)
    renderer.send(SceneState(scene="live", caption="still drawing"))
    renderer.wait_change(caption, before)
    assert renderer.proc.poll() is None


def test_chat_events_of_both_shapes_reach_the_panel():
    """The lifecycle's flat events and the chat event bus's shape (user: {name}, ids, count) feed
    the same panel: names, the marked line, alerts for tips, the viewer count."""
    from appliance.scene.model import SceneModel
    scene = SceneModel(title="Agent")
    scene.handle("comment", {"id": "1", "username": "ana", "text": "hi"})
    scene.handle("chat", {"id": "2", "user": {"name": "bo"}, "text": "hello"})
    scene.handle("tip", {"id": "3", "user": {"name": "cy"}, "text": "tipped 5 SOL", "amount": 5})
    scene.handle("answering", {"ids": ["2"]})
    scene.handle("viewers", {"count": 7})
    state = scene.snapshot()
    assert [(c.user, c.text) for c in state.chat] == [("ana", "hi"), ("bo", "hello"), ("cy", "tipped 5 SOL")]
    assert [c.answering for c in state.chat] == [False, True, False]
    assert state.alerts[-1].kind == "tip" and "cy" in state.alerts[-1].text and state.stats.viewers == 7
    scene.handle("sent", {"text": "welcome bo", "username": "Agent"})
    scene.handle("reply", {"text": "thanks", "to": ["2"]})
    state = scene.snapshot()
    assert [(c.user, c.own) for c in state.chat[-2:]] == [("Agent", True), ("Agent", True)]
    assert not any(c.answering for c in state.chat)
