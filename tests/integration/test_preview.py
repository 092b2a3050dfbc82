"""The console's preview: one x11grab at a low rate while someone looks, JPEG frames that
follow the display, stopped when nobody asks."""

from __future__ import annotations

import os
import subprocess
import time

from appliance.media.preview import Preview
from tests.support.tree import wait_until


def test_frames_follow_the_display_and_the_grabber_stops_when_idle(xvfb_display: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XAUTHORITY"}
    preview = Preview(xvfb_display, fps=2, width=320, idle_s=2, env=env)
    try:
        n, first = preview.frame(10)
        assert first.startswith(b"\xff\xd8") and first.endswith(b"\xff\xd9")
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0",
                                "-"], input=first, capture_output=True, timeout=10).stdout.decode().strip()
        assert probe == "320,180"
        window = subprocess.Popen(["xterm", "-display", xvfb_display, "-geometry", "80x24+0+0", "-bg", "white",
                                   "-e", "sleep 30"], env=env)
        try:
            def changed() -> bool:
                return preview.frame(5, newer_than=n)[1] != first
            wait_until(changed, 10, "a frame showing the new window")
        finally:
            window.kill()
            window.wait()
        assert preview.running
        wait_until(lambda: not preview.running, 8, "the idle grabber to stop")
        # asked again: starts again, and never hands out the frame from before it stopped
        window = subprocess.Popen(["xterm", "-display", xvfb_display, "-geometry", "40x10+300+200", "-bg", "red",
                                   "-e", "sleep 30"], env=env)
        try:
            time.sleep(1.0)
            n, again = preview.frame(10)
            assert again != first and preview.running
            assert preview.frame(5, newer_than=n)[0] > n  # and it goes on
        finally:
            window.kill()
            window.wait()
    finally:
        preview.close()
    assert not preview.running


def test_a_grabber_started_by_a_short_lived_thread_outlives_it(xvfb_display: str) -> None:
    """The console's frames are asked for by HTTP request threads that end at once; the
    grabber's parent-death signal is tied to the thread that forked it, so one started by the
    request's thread died with it and every request waited ~2 s for a new one (it failed before)."""
    import threading
    env = {k: v for k, v in os.environ.items() if k != "XAUTHORITY"}
    preview = Preview(xvfb_display, fps=2, width=320, idle_s=10, env=env)
    try:
        got: list = []
        asker = threading.Thread(target=lambda: got.append(preview.frame(10)))
        asker.start()
        asker.join()
        time.sleep(1.5)
        assert preview.running, "the grabber died with the thread that started it"
        t0 = time.monotonic()
        n, _ = preview.frame(5, newer_than=got[0][0])
        assert n > got[0][0] and time.monotonic() - t0 < 1.5
    finally:
        preview.close()
