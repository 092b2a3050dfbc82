"""The scene renderer as a real process on a real Xvfb: hostile text in every built-in scene,
redraw only on change (idle CPU), latency from message to pixels, live template reload with
a broken template, and a hostile socket peer. Screenshots land in $SCENE_SHOTS when set."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from appliance.scene.draw import Painter
from appliance.scene.model import SceneState
from tests.support.media import require
from tests.support.scene import RendererRun, hostile_state, regions

PAINTER = Painter(1280, 720)


@pytest.fixture()
def renderer(xvfb_display, tmp_path):
    require("ffmpeg")
    run = RendererRun(xvfb_display, tmp_path)
    yield run
    run.close()


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


