"""Simulcast's FFmpeg command (the tee muxer), its keys kept off logs, its config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.core.errors import ConfigError
from appliance.media.encoder import Redactor, build_command
from appliance.media.settings import SimulcastOutput, StreamConfig
from appliance.media.simulcast import read_key, relay_command

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
