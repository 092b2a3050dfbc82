"""Audio and video keep one offset at every stream start (issue 19; tests/support/avsync.py).

The real encoder (Xvfb, PulseAudio, FFmpeg writing FLV) is started several times; in each
stream a window turns white when a beep is heard in the sink, and the offset of each pair is
read back from the recording. Before the fix the stream's offset moved by 50-80 ms from one
start to the next (the audio anchored on its first, mis-stamped fragment; the video rounded to
a 1/30 s grid of random phase): bench/avsync.py --before measured per-start offsets of
+34, +67, +61, -10 ms. Now they stay within a few ms of each other.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from appliance.media.encoder import VIDEO_TIME_BASE, Encoder, burst_filter
from appliance.media.settings import StreamConfig
from tests.support.avsync import StartResult, play_cues, read_pairs, spread
from tests.support.media import require

STARTS = 5
PAIRS = 5
SETTLE_S = 4.0          # the audio converges on its timestamps within ~3 s of the start
SPREAD_S = 0.025        # measured 3-9 ms over 4-6 starts; a loaded 2-core machine adds a few
OFFSET_S = 0.035        # the offset itself: measured -13..-3 ms (before the fix: -10..+67 ms)


def one_start(display: str, out: Path) -> StartResult:
    enc = Encoder(StreamConfig(display=display))
    enc.start(str(out))
    try:
        deadline = time.monotonic() + 30
        while enc.stats().out_time_s < SETTLE_S:
            assert time.monotonic() < deadline, enc.last_stderr()
            time.sleep(0.1)
        assert enc.audio == "pulse"
        cues = play_cues(display, "stream", PAIRS, out.parent)
        time.sleep(0.5)
    finally:
        assert enc.stop() == 0
    return read_pairs(out, cues)


def test_audio_and_video_keep_one_offset_at_every_start(xvfb_display: str, pulse_server: str,
                                                        tmp_path: Path) -> None:
    require("ffmpeg", "ffprobe")
    results = [one_start(xvfb_display, tmp_path / f"start-{i}.flv") for i in range(STARTS)]
    own = [r.offset for r in results]
    report = (f"stream offsets (ms) {[round(o * 1000, 1) for o in own]}, viewer medians "
              f"{[round(r.median * 1000) for r in results]}")
    print("\n" + report)
    assert spread(own) <= SPREAD_S, report
    assert all(abs(o) <= OFFSET_S for o in own), report


def test_a_catch_up_burst_is_dropped_and_a_late_grab_kept(tmp_path: Path) -> None:
    """The encoder's video filter on frames with chosen timestamps (30 fps): grabs 1 ms apart
    (x11grab catching up) within a quarter frame of the last one kept are dropped; a grab 20 ms
    late and the on-time one 13 ms after it are both kept, each at its own time."""
    require("ffmpeg")
    # frames 10-14: a burst 1 ms apart from 0.301 s (frame 9 is at 0.300 s); frame 20: 20 ms late
    pts = "if(between(N,10,14),0.301+(N-10)*0.001,if(eq(N,20),20/30+0.02,N/30))"
    text = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=30:duration=2",
         "-vf", f"settb=1/1000,setpts='{pts}/TB',{burst_filter(StreamConfig())}", "-enc_time_base:v", VIDEO_TIME_BASE,
         "-c:v", "rawvideo", "-f", "framecrc", "-"], capture_output=True, text=True, check=True, timeout=60).stdout
    kept = [int(line.split(",")[2]) for line in text.splitlines() if not line.startswith("#")]
    assert len(kept) == 60 - 5, kept
    assert 300 in kept and not any(300 < t < 320 for t in kept)       # the burst: all within 8 ms of frame 9
    assert {686, 687} & set(kept) and {699, 700} & set(kept)           # late grab and the next, at their times
