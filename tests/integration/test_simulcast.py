"""Simulcast: one encode, the retake.tv output plus a second local nginx-rtmp that records; the
second one is down at start, comes up, drops and comes back — the first stream never notices."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.core.errors import ConfigError
from appliance.media.encoder import Encoder, Redactor, build_command
from appliance.media.settings import SimulcastConfig, SimulcastOutput, StreamConfig
from appliance.media.simulcast import Simulcast, read_key, relay_command
from tests.support.sandbox import requires_nginx
from tests.support.show import AcceptingCallbacks, ffprobe_json, frame_times

KEY_A, KEY_B = "sk_primarysecret0001", "live_123456_secondarySECRET"


def test_tee_command_keys_and_config(tmp_path: Path) -> None:
    cfg = StreamConfig(display=":5")
    cmd = build_command(cfg, f"rtmp://in.example/live/{KEY_A}", audio="pulse", relays=["udp://127.0.0.1:5000?pkt_size=1316"])
    assert cmd[-5:-1] == ["-flags", "+global_header", "-f", "tee"]
    first, second = cmd[-1].split("|")
    assert first == f"[f=flv:onfail=abort]rtmp://in.example/live/{KEY_A}"  # retake.tv failing still ends FFmpeg
    assert second.startswith("[f=mpegts:onfail=ignore:") and second.endswith("udp://127.0.0.1:5000?pkt_size=1316")
    assert cmd[cmd.index("-map"):cmd.index("-map") + 4] == ["-map", "1:v", "-map", "0:a"]
    assert build_command(cfg, "rtmp://in.example/live/k", audio="pulse")[-3:] == ["-f", "flv", "rtmp://in.example/live/k"]
    assert KEY_B not in " ".join(cmd)  # the secondary's key is only in its relay's argv
    redact = Redactor(f"rtmp://in.example/live/{KEY_A}")
    line = redact(f"[tee] {cmd[-1]} and rtmp://live.twitch.tv/app/{KEY_B}: Broken pipe")
    assert KEY_A not in line and KEY_B not in line
    assert "redacted> redacted>" not in line and "udp://127.0.0.1:5000" in line

    key = tmp_path / "twitch.key"
    output = SimulcastOutput(name="twitch", url="rtmp://live.twitch.tv/app/", key_file=key)
    with pytest.raises(ConfigError, match=r"simulcast output 'twitch': key_file .* cannot read"):
        read_key(output)
    key.write_text("two words\n")
    with pytest.raises(ConfigError, match=r"'twitch'.*not a stream key"):
        read_key(output)
    key.write_text(KEY_B + "\n")
    assert read_key(output) == KEY_B
    assert relay_command(5000, "pipe:7")[-2:] == ["flv", "pipe:7"]  # the key is the publisher's, never argv
    agent = {"name": "A", "description": "d", "image_url": "https://example.com/a.png",
             "wallet_address": "11111111111111111111111111111111", "ticker": "A"}
    with pytest.raises(ConfigError, match=r"simulcast\.outputs\.0\.url: must be rtmp://host/app"):
        parse_config({"agent": agent,
                      "simulcast": {"outputs": [{"name": "x", "url": "https://x/app", "key_file": "/k"}]}})


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
