"""The scene renderer as a real process on a private Xvfb, for tests and benchmarks.

``RendererRun``: the renderer started on a copy of the repo's ``overlays/`` as its scene folder
(tests edit it), a socket in a private folder, and helpers to send states, read
the screen's pixels quickly (xcffib GetImage) and take PNG screenshots. ``HOSTILE`` text and a
scene state full of it, for the unit and the integration tests."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import xcffib
import xcffib.xproto as xp

from appliance.scene.model import Alert, ChatLine, SceneState, Stats
from appliance.scene.template import load_scene

REPO = Path(__file__).resolve().parents[2]
# text that has broken renderers: scripts, emoji, terminal escapes, markup, format strings, size
HOSTILE = [
    "مرحبا بكم في البث المباشر",                      # Arabic, RTL, joined
    "שלום לכולם, מה שלומכם?",                          # Hebrew, RTL
    "你好，世界！こんにちは 안녕하세요",                   # CJK
    "emoji 😀🎉👍🏽 and Z\u0351\u0352\u0353 e\u0301",     # colour emoji, combining marks
    "\x1b[2J\x1b[31mANSI red\x1b]0;title\x07 \x07\x08 bell",  # terminal escapes, control characters
    "<b>markup</b> <span foreground='red'>x</span> &amp; {0.__class__} {} %s %n ${HOME}",
    "x" * 10_000,                                      # 10 kB
]


def hostile_state(scene: str) -> SceneState:
    chat = [ChatLine(id=str(i), user=HOSTILE[(i + 3) % len(HOSTILE)][:70], text=text[:600], answering=i == 2)
            for i, text in enumerate(HOSTILE)]
    return SceneState(scene=scene, title="SceneTest " + HOSTILE[0], topic=HOSTILE[2] + " " + HOSTILE[5][:100],
                      chat=chat, caption=(HOSTILE[3] + " " + HOSTILE[0])[:600],
                      stats=Stats(viewers=1234, live_since=time.time() - 4000, market_cap=98765.4),
                      alerts=[Alert(id="a", kind="tip", text=HOSTILE[1][:200], until=time.time() + 60)],
                      feeds={"show": HOSTILE[5][:2000], "welcome": HOSTILE[2]})


def regions(name: str) -> list:
    return [r for r in load_scene(REPO / "overlays" / f"{name}.yaml").regions if r.type not in ("content", "image")]


class RendererRun:
    def __init__(self, display: str, base: Path) -> None:
        self.display, self.base = display, base
        self.scene_dir = base / "overlays"
        shutil.copytree(REPO / "overlays", self.scene_dir)
        self.socket_path = base / "scene.sock"
        self.log = base / "renderer.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "appliance.scene.renderer",
                                          "--scene-dir", str(self.scene_dir), "--size", "1280x720",
                                          "--socket", str(self.socket_path), "--display", display],
                                         cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.socket_path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"renderer did not start:\n{self.log_text()}")
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.socket_path))
        self.x = xcffib.connect(display=display)
        self.root = self.x.get_setup().roots[0].root

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, state: SceneState | dict) -> None:
        data = state.model_dump_json() if isinstance(state, SceneState) else json.dumps(state)
        self.sock.sendall(data.encode() + b"\n")

    def pixels(self, rect: tuple[int, int, int, int]) -> bytes:
        x, y, w, h = rect
        reply = self.x.core.GetImage(xp.ImageFormat.ZPixmap, self.root, x, y, w, h, 0xFFFFFFFF).reply()
        return bytes(reply.data.buf())

    def wait_change(self, rect: tuple[int, int, int, int], before: bytes, timeout: float = 5.0) -> float:
        """Seconds until ``rect`` differs from ``before`` (AssertionError after ``timeout``)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.pixels(rect) != before:
                return time.monotonic() - start
            time.sleep(0.002)
        raise AssertionError(f"no change on screen in {rect} within {timeout} s\n{self.log_text()[-2000:]}")

    def screenshot(self, path: Path) -> Path:
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-f", "x11grab", "-draw_mouse", "0",
                        "-video_size", "1280x720", "-i", self.display, "-frames:v", "1", "-y", str(path)],
                       check=True, timeout=30)
        return path

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.sock.close()
        self.x.disconnect()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
