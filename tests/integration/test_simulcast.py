"""Simulcast: one encode, the retake.tv output plus a second local nginx-rtmp that records; the
second one is down at start, comes up, drops and comes back — the first stream never notices."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import pytest

from appliance.media.encoder import Encoder
from appliance.media.settings import SimulcastConfig, SimulcastOutput, StreamConfig
from appliance.media.simulcast import Simulcast
from tests.support.sandbox import requires_nginx
from tests.support.show import AcceptingCallbacks, ffprobe_json, frame_times

KEY_A, KEY_B = "sk_primarysecret0001", "live_123456_secondarySECRET"


@requires_nginx
@pytest.mark.timeout(120)
def test_a_failing_secondary_never_touches_the_retake_stream(xvfb_display, pulse_server, tmp_path, caplog) -> None:
    from appliance.sandbox.rtmp import RtmpIngest
    caplog.set_level(logging.DEBUG)
    callbacks = AcceptingCallbacks()
    base = callbacks.url
    primary, secondary = RtmpIngest(callback_base=base), RtmpIngest(callback_base=base)
    key = tmp_path / "second.key"
    key.write_text(KEY_B)
    simulcast = Simulcast(SimulcastConfig(outputs=[SimulcastOutput(name="second", url="rtmp://127.0.0.1:1/live",
                                                                   key_file=key)], retry_s=0.5, retry_max_s=1))
    encoder = Encoder(StreamConfig(display=xvfb_display, min_speed=0.5), simulcast=simulcast)
    try:
        primary.start()
        secondary.start()
        secondary.stop()  # its port is known; it is down when the stream starts
        simulcast.cfg.outputs[0].url = secondary.url
        encoder.start(f"{primary.url}/{KEY_A}")
        pid, started = encoder.pid, time.monotonic()
        health = []

        def at(t: float) -> None:
            while time.monotonic() - started < t:
                health.append(encoder.health().state)
                time.sleep(0.2)

        at(3.0)
        secondary.start()   # comes up: the relay's next attempt publishes
        at(7.0)
        secondary.stop(grace=0)   # drops mid-stream
        at(9.0)
        secondary.start()   # and comes back
        at(13.0)
        relay_lines = [line for relay in simulcast.relays for line in relay.stderr]
        attempts = simulcast.status()[0]["attempts"]
        assert encoder.pid == pid and encoder.health().state == "running", encoder.health()
        encoder.stop()
        time.sleep(1.0)  # nginx closes the recordings

        assert set(health) <= {"running"}, health
        assert attempts >= 2, simulcast.status()
        main = primary.recordings()
        assert len(main) == 1, main  # one publish: the retake.tv stream never restarted
        times = frame_times(Path(main[0]["path"]))
        gaps = [b - a for a, b in itertools.pairwise(times) if a >= 1.0]
        assert times[-1] - times[0] > 11 and max(gaps) < 0.1, \
            f"span {times[-1] - times[0]:.1f} s, gap {max(gaps):.3f} s"
        copies = [r for r in secondary.recordings() if r["size"] > 10_000]
        assert len(copies) >= 2, secondary.recordings()  # before the drop and after it came back
        for copy in copies:
            streams = {s["codec_type"]: s for s in ffprobe_json(Path(copy["path"]), "-show_streams")["streams"]}
            assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
            assert streams["video"]["width"] == 1280
            assert len(frame_times(Path(copy["path"]))) > 45, copy  # > 1.5 s of video each
        seen = "\n".join([*encoder.last_stderr(), *relay_lines, caplog.text])
        assert KEY_A not in seen and KEY_B not in seen
    finally:
        encoder.stop()
        simulcast.stop()
        primary.cleanup()
        secondary.cleanup()
        callbacks.close()
