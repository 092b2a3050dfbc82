"""The media layer's logic without its programs: FFmpeg's command line (the skill's reference
settings), progress parsing and key redaction, the encoder's health verdicts on a fake process
and clock, espeak-ng's argv, the content log. The real processes: tests/integration/test_media.py."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from appliance.core.errors import MediaError
from appliance.media.content import ContentLog, content_window_command
from appliance.media.encoder import (
    Encoder,
    EncoderStats,
    Redactor,
    apply_progress,
    build_command,
    reference_command,
)
from appliance.media.settings import OverlayConfig, StreamConfig
from appliance.voice import EspeakVoice
from appliance.voice.settings import EspeakVoiceConfig
from tests.support.tree import wait_until

SECRET = "sk_live_7hQpZ3mN9xR2"


def test_build_command_defaults_are_the_reference_settings() -> None:
    # the reference's :99 (the default display is chosen at start by `appliance up`: "auto")
    cmd = build_command(StreamConfig(display=":99"), "rtmp://host/live/KEY", audio="silent")
    line = " ".join(cmd)
    assert cmd[0] == "ffmpeg" and cmd[-1] == "rtmp://host/live/KEY"
    x11 = cmd.index("x11grab")
    assert cmd[x11 - 3:x11 - 1] == ["-thread_queue_size", "512"]
    assert "-video_size 1280x720 -framerate 30 -i :99" in line
    for piece in ("-c:v libx264 -preset veryfast -tune zerolatency",
                  "-b:v 1500k -maxrate 1500k -bufsize 3000k", "-pix_fmt yuv420p -g 60",
                  "-c:a aac -b:a 128k -ar 44100 -ac 2", "-f flv rtmp://host/live/KEY",
                  "-f lavfi -i anullsrc=channel_layout=stereo:sample_rate=44100",
                  "-progress pipe:1 -stats_period 0.1"):
        assert piece in line
    assert "x264-params" not in line and "pulse" not in line


def test_build_command_pulse_and_options() -> None:
    cfg = StreamConfig(display=":7", framerate=25, keyframe_s=2, strict_cbr=True, sample_rate=48000)
    cmd = build_command(cfg, "out.flv", audio="pulse", progress="")
    line = " ".join(cmd)
    pulse = cmd.index("pulse")
    assert "-thread_queue_size" in cmd[pulse - 3:pulse]
    assert "-i stream.monitor" in line and "anullsrc" not in line
    assert "-g 50" in line and "-x264-params nal-hrd=cbr" in line and "-ar 48000" in line
    assert "-progress" not in cmd
    # frames keep their grab times on FLV's millisecond (tests/integration/test_avsync.py), 25 fps: a
    # grab within a quarter frame (10 ms) of the last one kept is dropped; the audio follows its timestamps
    assert "-enc_time_base:v 1/1000 -fps_mode:v vfr" in line and "gte(t-prev_selected_t\\,0.0100)" in line
    assert cmd[cmd.index("-af") + 1].startswith("aresample=async=1000:")
    assert cmd[cmd.index("-threads") + 1] == "1" and cmd.index("-threads") > cmd.index("libx264")  # one x264 thread
    assert "-threads" not in build_command(cfg.model_copy(update={"encoder_threads": 0}), "o.flv", audio="pulse")
    assert "-i mysink.monitor" in " ".join(build_command(cfg, "o.flv", audio="pulse",
                                                         pulse_source="mysink.monitor"))
    with pytest.raises(ValueError):
        build_command(cfg, "o.flv", audio="mic")  # type: ignore[arg-type]


def test_reference_command_is_verbatim() -> None:
    assert " ".join(reference_command(":99", "URL/KEY")) == (
        "ffmpeg -thread_queue_size 512 -f x11grab -video_size 1280x720 -framerate 30 -i :99 "
        "-f lavfi -i anullsrc=channel_layout=stereo:sample_rate=44100 "
        "-c:v libx264 -preset veryfast -tune zerolatency -b:v 1500k -maxrate 1500k -bufsize 3000k "
        "-pix_fmt yuv420p -g 60 -c:a aac -b:a 128k -f flv URL/KEY")


def test_progress_parsing_and_redaction() -> None:
    stats = EncoderStats()
    for line in ("frame=120", "fps=30.01", "bitrate=1510.2kbits/s", "total_size=123456",
                 "out_time_us=4000000", "dup_frames=1", "drop_frames=2", "speed=1.01x",
                 "stream_0_0_q=23.0", "speed=N/A"):
        apply_progress(stats, *line.split("=", 1))
    assert (stats.frame, stats.fps, stats.bitrate_kbps, stats.total_size) == (120, 30.01, 1510.2, 123456)
    assert (stats.out_time_s, stats.dup_frames, stats.drop_frames, stats.speed) == (4.0, 1, 2, 1.01)
    redact = Redactor(f"rtmp://ingest.example/live/{SECRET}")
    text = redact(f"[flv] rtmp://ingest.example/live/{SECRET}: I/O error; key {SECRET}")
    assert SECRET not in text and "rtmp://ingest.example/live/" in text
    assert SECRET not in Redactor("rtmps://a:443/app/other")(f"rtmps://a:443/app/{SECRET}")


def test_health_logic_with_fake_clock() -> None:
    now = [100.0]
    blocks = b"".join(b"frame=%d\nout_time_us=%d\ntotal_size=%d\nprogress=continue\n"
                      % (30 * i, 1_000_000 * i, 1000 * i) for i in range(1, 4))
    proc = FakeProc(blocks)
    argv: list[list[str]] = []
    publishers: list[FakePublisher] = []

    def publisher(target) -> FakePublisher:
        publishers.append(FakePublisher(target))
        return publishers[-1]
    enc = Encoder(StreamConfig(audio_source="silent", stall_after_s=3),
                  popen=lambda cmd, **k: argv.append(cmd) or proc, publisher=publisher,
                  clock=lambda: now[0], stop_timeout_s=0.01)
    assert enc.health().state == "stopped"
    enc.start("rtmp://h/live/" + SECRET)
    wait_until(lambda: enc.stats().frame == 90, 2, "the progress read", interval=0.01)
    assert SECRET not in " ".join(argv[0]) and argv[0][-1].startswith("pipe:")  # the key is the publisher's
    assert publishers[0].target.stream == SECRET and publishers[0].target.app == "live"
    assert not enc.has_output()  # FFmpeg wrote, but nothing reached the ingest yet
    publishers[0].media_sent = True
    assert enc.has_output() and enc.health().state == "running"
    now[0] += 3.5
    health = enc.health()
    assert health.state == "stalled" and "stuck at 90" in health.reason
    assert SECRET not in repr(enc)
    proc.returncode = 1
    assert enc.health().state == "exited" and enc.health().exit_code == 1
    proc.returncode = None
    assert enc.stop() == -signal.SIGTERM and proc.stdin.getvalue() == b"q"
    assert proc.signals == [signal.SIGCONT, signal.SIGTERM]
    assert enc.health().state == "stopped"


def test_stop_ends_the_publish_when_ffmpeg_is_blocked_on_it() -> None:
    """FFmpeg blocked writing to a full pipe (the ingest stopped reading) cannot read ``q``:
    stopping the publisher fails its write and it ends, with no SIGTERM or SIGKILL needed."""
    proc = FakeProc()
    publishers: list[FakePublisher] = []

    def publisher(target) -> FakePublisher:
        publishers.append(FakePublisher(target))
        publishers[-1].stop = lambda timeout=5.0: setattr(proc, "returncode", 1)  # EPIPE: FFmpeg ends
        return publishers[-1]
    enc = Encoder(StreamConfig(audio_source="silent"), popen=lambda cmd, **k: proc, publisher=publisher,
                  stop_timeout_s=0.01)
    enc.start("rtmp://h/live/" + SECRET)
    assert enc.stop() == 1 and proc.signals == []


def test_slow_speed_is_a_stall() -> None:
    now = [0.0]
    enc = Encoder(StreamConfig(audio_source="silent", min_speed=0.95), popen=None,  # type: ignore[arg-type]
                  clock=lambda: now[0])
    enc._proc = FakeProc()
    enc._first_frame_at, enc._started_at = 0.0, 0.0
    for i in range(25):  # 12 s of wall time, 9.6 s of media
        now[0] = i * 0.5
        enc._samples.append((now[0], i * 0.4))
        enc._last_advance = now[0]
    health = enc.health()
    assert health.state == "stalled" and "speed 0.80x" in health.reason


def test_espeak_argv_is_safe(tmp_path: Path) -> None:
    voice = EspeakVoice(EspeakVoiceConfig(max_chars=20))
    cmd = voice.command("-v evil; rm -rf / \x1b]0;title\x07 and a long tail of text", tmp_path / "o.wav")
    assert cmd[-2] == "--" and cmd[-1].startswith("-v evil; rm -rf /") and len(cmd[-1]) <= 20
    assert "\x1b" not in cmd[-1]
    with pytest.raises(MediaError, match="nothing to say"):
        voice.synthesize("\x1b[2J", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_content_log_strips_escapes_and_rotates(tmp_path: Path) -> None:
    log = ContentLog(tmp_path / "s.log", max_line_chars=40, max_bytes=400, clock=lambda: 0.0)
    line = log.write("hi \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m \u202eevil\r\nnext")
    assert line == "00:00:00 hi red evil next"
    raw = (tmp_path / "s.log").read_bytes()
    assert b"\x1b" not in raw and b"\x07" not in raw and b"\r" not in raw
    for i in range(40):
        log.write(f"line {i} " + "x" * 60)
    assert (tmp_path / "s.log").stat().st_size <= 400
    assert len(log.write("y" * 100)) == len("00:00:00 ") + 40
    cmd = content_window_command(tmp_path / "s.log", OverlayConfig())
    assert cmd == ["xterm", "-fa", "Monospace", "-fs", "12", "-bg", "black", "-fg", "#00ff00",
                   "-geometry", "160x45+0+0", "-e", "tail", "-F", str(tmp_path / "s.log")]


class FakeProc:
    def __init__(self, progress: bytes = b"") -> None:
        import io
        self.pid, self.returncode = 4242, None
        self.stdin = io.BytesIO()
        self.stdin.close = lambda: None  # keep what was written readable
        self.stdout, self.stderr = io.BytesIO(progress), io.BytesIO(b"")
        self.signals: list[int] = []

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            raise subprocess.TimeoutExpired("ffmpeg", timeout)
        return self.returncode

    def send_signal(self, sig):
        self.signals.append(sig)
        if sig in (signal.SIGTERM, signal.SIGKILL):
            self.returncode = -sig


class FakePublisher:
    """Stands in for appliance.media.rtmp.Publisher: closes its end of the pipe, "sends" media."""

    def __init__(self, target) -> None:
        self.target, self.media_sent, self.failed, self.error = target, False, False, ""

    def start(self, read_fd: int) -> FakePublisher:
        os.close(read_fd)
        return self

    def wait(self, timeout: float) -> bool:
        return True

    def stop(self, timeout: float = 5.0) -> None:
        pass
