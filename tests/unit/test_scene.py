"""Scene templates and drawing in memory (cairo on an image surface, no X): the built-in scenes
parse, a broken template names its file and key, long titles shrink instead of being cut, chat
events of both shapes reach the panel. The renderer as a process: tests/integration/test_scene.py."""

from __future__ import annotations

import time

import pytest

from appliance.core.errors import ConfigError
from appliance.scene.draw import Painter
from appliance.scene.template import load_scene, parse_scene, scene_files
from tests.support.scene import REPO, hostile_state, regions


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
