"""The avatar as viewers get it: `appliance up` live on the sandbox speaks sentences, and the
recording nginx made of the stream is decoded — for each sentence, the first frame where the
avatar's mouth is open against the first audible sample, and the mouth shut in the pauses
between sentences (tests/support/show.py: lip_sync). The full figures over more sentences
and the CPU cost are bench/avatar.py's."""

from __future__ import annotations

import io
import shutil
import time

import cairocffi as cairo
import pytest
import requests

from tests.support.media import require
from tests.support.sandbox import requires_nginx
from tests.support.show import LiveAppliance, lip_sync
from tests.support.tree import short_tmpdir

# each starts with an open vowel ("I" is /aɪ/: the wide-open mouth), so the first sound and the
# mouth opening are the same moment
SENTENCES = ["I like the harbour at night.", "I think the puzzle is solved.", "Amazing work, chat.",
             "I see seven golden melons.", "Always check the clock.", "I am reading everything.",
             "Honestly, that was close.", "I will answer that next.", "Alright, next move.",
             "I heard you, marina."]
FRAME_S = 1 / 30
# The goal is |offset| within a frame (median) and two frames (p95). What the voice's
# clock and the renderer decide is each sentence's offset from the stream's own median: that
# spread is held to the goal. The median itself also carries the encoder's alignment of audio
# and video, which moves by up to ~75 ms from one stream start to the next (22-94 ms measured,
# docs/avatar.md): it is held to three frames, which still fails a mouth on the wrong clock.
SPREAD_MEDIAN_S = FRAME_S
SPREAD_P95_S = 2 * FRAME_S
STREAM_MEDIAN_S = 3 * FRAME_S


@requires_nginx
@pytest.mark.timeout(300)
def test_the_mouth_opens_with_the_voice_and_rests_in_the_pauses(rtmp_sandbox) -> None:
    require("ffmpeg", "espeak-ng", "Xvfb", "pulseaudio")
    base = short_tmpdir("apavatar-")
    try:
        # the live scene from the start (no starting card: scene.starting_s 0)
        with LiveAppliance(rtmp_sandbox, base, name="FaceAgent", extra={"scene": {"starting_s": 0}}) as app:
            app.start()
            time.sleep(5.0)  # the stream's first seconds: the encoder settles its audio timestamps
            start = time.time() - app.publish_at
            for sentence in SENTENCES:
                result = app.call("POST", "/say", {"text": sentence, "wait": True})
                assert result["status"] == "spoken", result
                time.sleep(0.7)
            end = time.time() - app.publish_at
            thumbnail = requests.get(f"{rtmp_sandbox.origin}/_sandbox/thumbnails/{app.user}", timeout=10).content
            assert app.stop() == 0, app.tail()
        sync = lip_sync(app.recording(), after=start - 0.5, before=end + 0.5)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    figures = sync.figures()
    print(f"\navatar lip sync: {figures}; offsets (ms) {[round(o * 1000) for o in sync.offsets]}")
    assert not sync.missed, f"no open mouth while these were heard: {sync.missed}"
    assert len(sync.offsets) == len(SENTENCES), figures
    assert figures["spread_median_ms"] <= SPREAD_MEDIAN_S * 1000, figures
    assert figures["spread_p95_ms"] <= SPREAD_P95_S * 1000, figures
    assert abs(figures["median_ms"]) <= STREAM_MEDIAN_S * 1000, figures
    assert sync.pause_frames > 3 * len(SENTENCES) and sync.pause_open == 0, figures
    # the thumbnail retake.tv lists (a capture of the display) shows the face
    assert skin_pixels(thumbnail) > 3000


def skin_pixels(png: bytes) -> int:
    """Pixels of the default character's skin (#f4c7a1) in a PNG."""
    image = cairo.ImageSurface.create_from_png(io.BytesIO(png))
    data, stride = bytes(image.get_data()), image.get_stride()
    skin = (0xA1, 0xC7, 0xF4)  # B, G, R as cairo stores it
    return sum(1 for y in range(image.get_height()) for x in range(0, image.get_width() * 4, 4)
               if all(abs(data[y * stride + x + k] - skin[k]) <= 6 for k in range(3)))
