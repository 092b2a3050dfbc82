"""Scenes follow the stream (issue 20.2), as viewers get it: `appliance up` goes live on the
sandbox, and the recordings nginx made of its streams are decoded (tesseract on each scene's
own text):

* the first seconds show ``starting`` with ``overlays/welcome.txt`` on it;
* then ``live``, whose title bar carries the direction given with `appliance direct`;
* after FFmpeg is killed, the recovered stream opens on ``brb`` (the platform is slow to say
  it is live again: a sandbox fault), then ``live`` again;
* at stop, ``ending`` with this stream's figures, streamed before the encoder stops.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.support.media import require
from tests.support.sandbox import requires_nginx
from tests.support.show import LiveAppliance, frame_times, ocr, scene_rect, words_found
from tests.support.tree import short_tmpdir, wait_until

DIRECTION = "Ocean quiz tonight"


@requires_nginx
@pytest.mark.timeout(240)
def test_scenes_follow_the_stream_in_the_recording(rtmp_sandbox) -> None:
    require("ffmpeg", "tesseract", "Xvfb")
    base = short_tmpdir("apscenes-")
    try:
        check_scenes(rtmp_sandbox, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def read(recording: Path, at: float, scene: str, region: str = "text", feed: str | None = None) -> str:
    return ocr(recording, at, scene_rect(region, scene, feed=feed))


def check_scenes(sb, base: Path) -> None:
    extra = {"scene": {"starting_s": 4, "ending_s": 3}, "stream": {"audio_source": "silent"}}
    with LiveAppliance(sb, base, name="SceneAgent", extra=extra) as app:
        app.start()
        answer = json.loads(app.cli("direct", f"\x1b[2J{DIRECTION}"))
        assert answer == {"direction": DIRECTION, "source": "cli"}
        # past starting_s: the live scene with the topic, on screen for a few seconds (waited for, not
        # assumed: a loaded machine starts slower)
        wait_until(lambda: app.call("GET", "/scene")["scene"] == "live", 30, "the live scene")
        time.sleep(3)
        first = app.ffmpeg_pid()
        # a crash, and a platform slow to confirm the new stream: the recovered stream opens on brb
        sb.set_fault(kind="slow", paths="agent/stream/status", count=2, delay_s=3)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: app.call("GET", "/status")["restarts"] >= 1
                   and app.call("GET", "/status")["state"] == "live", 40, "live again")
        time.sleep(3)
        assert app.stop() == 0, app.tail()
        state = json.loads((base / "state" / "state.json").read_text())
    assert state["direction"]["text"] == DIRECTION  # kept for the next run
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(1 for r in sb.recordings() if r.get("complete")) < 2:
        time.sleep(0.2)
    before, after = (Path(r["path"]) for r in sb.recordings()[:2])

    # the first stream: the starting card with the welcome, then live with the direction as the topic
    assert words_found(read(before, 1.0, "starting"), "Starting soon") == ["starting", "soon"]
    welcome = read(before, 1.0, "starting", feed="welcome")
    assert len(words_found(welcome, "Welcome! This stream is run by an AI agent on retake.tv")) >= 3, welcome
    end_of_first = frame_times(before)[-1]
    assert end_of_first > 4, end_of_first  # the starting card, then the live scene for 3 s
    title = read(before, end_of_first - 1.0, "live", region="title")
    assert words_found(title, DIRECTION) == ["ocean", "quiz", "tonight"], title
    assert not words_found(read(before, end_of_first - 1.0, "starting"), "Starting soon")

    # the recovered stream: brb first (whatever viewers see before it is confirmed), then live
    assert words_found(read(after, 1.0, "brb"), "Be right back") == ["right", "back"]
    times = frame_times(after)
    assert words_found(read(after, times[-1] - 5.0, "live", region="title"), DIRECTION) == ["ocean", "quiz", "tonight"]

    # the end card with the stream's figures, on stream before the encoder stopped
    assert words_found(read(after, times[-1] - 0.5, "ending"), "Thanks for watching") == ["thanks", "watching"]
    figures = read(after, times[-1] - 0.5, "ending", feed="show")
    assert {"live", "peak", "viewers", "messages"} <= set(words_found(figures, "Live peak viewers messages")), figures
    # streamed for scene.ending_s (3 s): already there 2.5 s before the last frame
    assert words_found(read(after, times[-1] - 2.5, "ending"), "Thanks for watching") == ["thanks", "watching"]
