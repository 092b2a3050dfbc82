"""The encoder's audio opens at once: without a listener a null sink renders in 2-s blocks, and
FFmpeg's pulse input waited for the next one (about 2 s on main, every start and every
recovery). keep_sink_clock holds a 50 ms record stream on the monitor and restarts the sink's
clock, against a real PulseAudio."""

from __future__ import annotations

import statistics
import subprocess
import time

from appliance.media.audio import KEEPER_CLIENT, _pulse, ensure_sink, keep_sink_clock
from tests.support.media import require


def pulse_input_opens_in() -> float:
    """Seconds until FFmpeg has opened ``stream.monitor`` (its "Input #0" line)."""
    started = time.monotonic()
    ffmpeg = subprocess.Popen(["ffmpeg", "-hide_banner", "-f", "pulse", "-sample_rate", "44100", "-channels", "2",
                               "-fragment_size", "8820", "-i", "stream.monitor", "-t", "0.2", "-f", "null", "-"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    opened = None
    assert ffmpeg.stderr is not None
    for line in ffmpeg.stderr:
        if opened is None and line.startswith("Input #0"):
            opened = time.monotonic() - started
    ffmpeg.wait(20)
    assert opened is not None, "FFmpeg never opened the monitor"
    return opened


def test_the_encoders_audio_input_opens_at_once_while_the_clock_is_kept(pulse_server: str) -> None:
    require("ffmpeg")
    require("parec")
    ensure_sink("stream", 44100)
    keeper = keep_sink_clock("stream")
    assert keeper is not None
    try:
        with _pulse() as pulse:
            outputs = [o.proplist.get("application.name") for o in pulse.source_output_list()]
        assert KEEPER_CLIENT in outputs
        times = [pulse_input_opens_in() for _ in range(3)]
        assert statistics.median(times) < 0.8, times  # main: ~2 s each
    finally:
        keeper.terminate()
        keeper.wait(5)
