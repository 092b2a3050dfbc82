"""Media layer against real processes: Xvfb, PulseAudio, FFmpeg, espeak-ng, paplay, scrot.

Uses the session fixtures of tests/support/media.py (a private display and PulseAudio), writes
FLV files instead of pushing to an ingest, and checks what FFmpeg produced by decoding it.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.core.errors import MediaError
from appliance.media import audio
from appliance.media.content import ContentLog
from appliance.media.display import (
    capture_jpeg,
    capture_png,
    png_size,
    wait_for_display,
)
from appliance.media.encoder import Encoder
from appliance.media.settings import StreamConfig
from appliance.voice import (
    EspeakVoice,
    FallbackVoice,
    GttsVoice,
    PaplayPlayer,
    SpeechQueue,
    make_voice,
)
from appliance.voice.settings import EspeakVoiceConfig, GttsVoiceConfig

# the fixtures xvfb_display, pulse_server and flv_target come from conftest.py (media_fixtures)
from tests.support.media import free_port, moving_content, require

SECRET = "sk_live_7hQpZ3mN9xR2"


def probe(path: Path, *args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
                         capture_output=True, check=True, timeout=60).stdout
    return json.loads(out)


def rms_windows(path: Path, samples: int = 11025) -> list[tuple[float, float]]:
    """(time, RMS dB) per window of ``samples`` audio samples (0.25 s at 44.1 kHz)."""
    flt = (f"asetnsamples=n={samples},astats=metadata=1:reset=1,"
           "ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file=-")
    text = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a",
                           "-af", flt, "-f", "null", "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    result, t = [], 0.0
    for line in text.splitlines():
        if line.startswith("frame:"):
            t = float(line.rsplit("pts_time:", 1)[1])
        elif "RMS_level=" in line:
            value = line.split("=", 1)[1]
            result.append((t, -math.inf if "inf" in value else float(value)))
    return result


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def stream_cfg(display: str, **kw) -> StreamConfig:
    return StreamConfig(display=display, **kw)


@pytest.fixture(scope="module")
def content_window(xvfb_display: str, tmp_path_factory: pytest.TempPathFactory):
    """The reference xterm tailing a ContentLog, fed a line every 0.1 s (moving content)."""
    require("xterm")
    with moving_content(tmp_path_factory.mktemp("content") / "stream.log", xvfb_display) as log:
        yield log


# --- PulseAudio ------------------------------------------------------------------------------

def test_ensure_sink_is_idempotent(pulse_server: str) -> None:
    assert audio.pulse_available()
    audio.ensure_sink("voice_test", 48000)
    audio.ensure_sink("voice_test", 48000)
    sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True,
                           check=True).stdout
    assert sinks.count("voice_test") == 1 and "48000Hz" in sinks
    audio.ensure_sink("stream", 44100)  # back to the default sink used by the other tests
    assert audio.sink_monitor("stream") == "stream.monitor"


def test_pulse_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/nothing")
    assert audio.pulse_available(timeout=0.5) is False
    with pytest.raises(MediaError, match="cannot set up sink"):
        audio.ensure_sink("stream", 44100, timeout=0.5)


# --- the real encoder ------------------------------------------------------------------------

def test_encode_display_and_voice(xvfb_display: str, pulse_server: str, content_window: ContentLog,
                                  flv_target: Path) -> None:
    """~6 s from the real display and sink, with a sentence spoken in the middle."""
    require("ffmpeg", "ffprobe", "espeak-ng", "paplay")
    enc = Encoder(stream_cfg(xvfb_display))
    speaker = SpeechQueue(make_voice(), PaplayPlayer("stream"), workdir=flv_target.parent / "speech").start()
    enc.start(str(flv_target))
    try:
        assert wait_until(lambda: enc.stats().out_time_s >= 1.5, 15), enc.last_stderr()
        assert enc.audio == "pulse"
        spoken_at = enc.stats().out_time_s
        utt = speaker.say("Hello viewers, this sentence is spoken into the stream.")
        assert utt.wait(15) and utt.status == "spoken", utt
        seconds = utt.seconds
        assert 1.5 < seconds < 8
        assert wait_until(lambda: enc.stats().out_time_s >= spoken_at + seconds + 1.0, 15)
        assert enc.health().state == "running"
        stats = enc.stats()
    finally:
        speaker.close()
        assert enc.stop() == 0
    assert stats.drop_frames <= 5 and stats.fps > 20

    info = probe(flv_target, "-show_streams", "-show_format")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    sound = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1280, 720)
    assert video["pix_fmt"] == "yuv420p"
    num, den = map(int, video["avg_frame_rate"].split("/"))
    assert num / den == pytest.approx(30, abs=1.5)
    assert (sound["codec_name"], int(sound["sample_rate"]), sound["channels"]) == ("aac", 44100, 2)

    keys = probe(flv_target, "-select_streams", "v", "-skip_frame", "nokey",
                 "-show_entries", "frame=pts_time")["frames"]
    times = [float(f["pts_time"]) for f in keys]
    assert len(times) >= 3
    assert max(b - a for a, b in itertools.pairwise(times)) <= 2.05

    windows = rms_windows(flv_target)
    loud = [t for t, db in windows if db > -35]
    assert loud, f"no speech heard: {windows}"
    # heard after it was asked for, and soon: synthesis (espeak-ng, then a wav) runs first
    assert spoken_at - 0.1 <= loud[0] <= spoken_at + 2.0, (loud[0], spoken_at)
    before = [db for t, db in windows if 0.3 <= t < min(loud[0], spoken_at) - 0.3]
    assert before and max(before) < -70, windows
    assert len(loud) * 0.25 >= seconds * 0.5

    packets = probe(flv_target, "-select_streams", "a", "-show_entries",
                    "packet=pts_time,duration_time")["packets"]
    pts = [float(p["pts_time"]) for p in packets]
    frame = 1024 / 44100
    gaps = [b - a for a, b in itertools.pairwise(pts)]
    assert max(gaps) < frame * 2, "a gap in the audio track"
    assert pts[-1] - pts[0] == pytest.approx(len(pts) * frame, rel=0.02)


def onset(path: Path, stream: str, flt: str, key: str, above: float) -> float | None:
    """Time of the first frame whose ``key`` metadata is above ``above``."""
    text = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", f"0:{stream}",
                           f"-{stream}f", f"{flt},{'a' if stream == 'a' else ''}metadata=mode=print:key={key}:file=-",
                           "-f", "null", "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    t = 0.0
    for line in text.splitlines():
        if line.startswith("frame:"):
            t = float(line.rsplit("pts_time:", 1)[1])
        elif "=" in line and "inf" not in line and float(line.split("=", 1)[1]) > above:
            return t
    return None


def sync_skew(display: str, beep: Path, out: Path, *, sound_first: bool) -> float:
    """One stream with a stimulus: a white window mapped and a beep played, one right after the
    other. Returns the beep's stream time minus the white frame's."""
    env = dict(os.environ, DISPLAY=display)
    white = subprocess.Popen(["xterm", "-bg", "white", "-name", "synctest", "-geometry", "160x45+0+0",
                              "-e", "sleep", "60"], env=env, start_new_session=True)
    try:
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--classname", "synctest"],
                               env=env, capture_output=True, text=True, timeout=10).stdout.split()
        window = found[0]
        subprocess.run(["xdotool", "windowunmap", "--sync", window], env=env, check=True, timeout=10)
        enc = Encoder(stream_cfg(display))
        enc.start(str(out))
        try:
            assert wait_until(lambda: enc.stats().out_time_s >= 1.0, 15), enc.last_stderr()
            show = ["xdotool", "windowmap", "--sync", window]
            if sound_first:
                play = subprocess.Popen(["paplay", "--device=stream", str(beep)])
                subprocess.run(show, env=env, check=True, timeout=10)
            else:
                subprocess.run(show, env=env, check=True, timeout=10)
                play = subprocess.Popen(["paplay", "--device=stream", str(beep)])
            play.wait(10)
            time.sleep(0.7)
        finally:
            enc.stop()
    finally:
        white.terminate()
        white.wait(5)
    seen = onset(out, "v", "signalstats", "lavfi.signalstats.YAVG", 128)
    heard = onset(out, "a", "asetnsamples=n=441,astats=metadata=1:reset=1",
                  "lavfi.astats.Overall.RMS_level", -40)
    assert seen is not None and heard is not None
    return heard - seen


def test_audio_and_video_in_sync(xvfb_display: str, pulse_server: str, content_window: ContentLog,
                                 tmp_path: Path) -> None:
    """The display and the sink reach the stream in sync.

    The stimulus has its own skew: whichever of paplay and the window map starts second lands
    30-110 ms later (process start, xterm's repaint, the next 33 ms frame). So the stream is
    measured once each way, and the mean of the two skews, where that bias cancels, is the
    encoder's. Measured here: -0.016..-0.112 s sound first, +0.025..+0.077 s picture first.
    """
    require("ffmpeg", "paplay", "xterm", "xdotool")
    beep = tmp_path / "beep.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "sine=f=1000:d=0.5",
                    "-ac", "2", "-y", str(beep)], check=True, timeout=30)
    sound_first = sync_skew(xvfb_display, beep, tmp_path / "sound-first.flv", sound_first=True)
    picture_first = sync_skew(xvfb_display, beep, tmp_path / "picture-first.flv", sound_first=False)
    skews = f"sound first {sound_first:+.3f} s, picture first {picture_first:+.3f} s"
    assert abs(sound_first) < 0.25 and abs(picture_first) < 0.25, skews
    assert abs(sound_first + picture_first) / 2 <= 0.075, skews


def test_key_never_leaks(xvfb_display: str, caplog: pytest.LogCaptureFixture) -> None:
    require("ffmpeg")
    caplog.set_level(logging.DEBUG, logger="appliance")
    target = f"rtmp://127.0.0.1:{free_port()}/live/{SECRET}"
    enc = Encoder(stream_cfg(xvfb_display, audio_source="silent"))
    enc.start(target)
    assert wait_until(lambda: enc.health().state == "exited", 15)
    health = enc.health()
    blob = "\n".join([repr(enc), str(health), health.reason, *health.last_stderr,
                      *enc.last_stderr(), caplog.text, str(MediaError(health.reason))])
    assert enc.last_stderr(), "ffmpeg said nothing"
    assert "127.0.0.1" in blob
    assert SECRET not in blob
    enc.stop()


def test_health_stall_and_exit(xvfb_display: str, flv_target: Path) -> None:
    require("ffmpeg")
    enc = Encoder(stream_cfg(xvfb_display, audio_source="silent", stall_after_s=2))
    enc.start(str(flv_target))
    try:
        assert wait_until(enc.has_output, 15), enc.last_stderr()
        assert enc.health().state == "running"
        os.kill(enc.pid, signal.SIGSTOP)
        assert wait_until(lambda: enc.health().state == "stalled", 5)
        assert "stuck" in enc.health().reason
        os.kill(enc.pid, signal.SIGCONT)
        assert wait_until(lambda: enc.health().state == "running", 5)
        os.kill(enc.pid, signal.SIGKILL)
        assert wait_until(lambda: enc.health().state == "exited", 5)
        assert enc.health().exit_code == -signal.SIGKILL
    finally:
        enc.stop()
    assert enc.health().state == "stopped"


def test_stop_reaches_a_stopped_ffmpeg(xvfb_display: str, flv_target: Path) -> None:
    """A SIGSTOPped FFmpeg cannot read q: stop() continues it and terminates it by pid."""
    require("ffmpeg")
    enc = Encoder(stream_cfg(xvfb_display, audio_source="silent"), stop_timeout_s=1.0)
    enc.start(str(flv_target))
    assert wait_until(enc.has_output, 15), enc.last_stderr()
    os.kill(enc.pid, signal.SIGSTOP)
    began = time.monotonic()
    code = enc.stop()
    assert code is not None and time.monotonic() - began < 8  # 3 waits of 1 s + 2 joins, with slack
    assert enc.health().state == "stopped"


def test_silent_fallback_without_pulse(xvfb_display: str, flv_target: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    require("ffmpeg", "ffprobe")
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-such-socket")
    enc = Encoder(stream_cfg(xvfb_display, audio_source="pulse"))
    enc.start(str(flv_target))
    try:
        assert enc.audio == "silent" and "silent audio track" in caplog.text
        assert wait_until(lambda: enc.stats().out_time_s >= 1.0, 15), enc.last_stderr()
    finally:
        assert enc.stop() == 0
    kinds = {s["codec_type"]: s for s in probe(flv_target, "-show_streams")["streams"]}
    assert kinds["audio"]["codec_name"] == "aac" and kinds["video"]["codec_name"] == "h264"


# --- voices ----------------------------------------------------------------------------------

def fake_gtts(calls: list[dict], *, fail: bool = False):
    class FakeTTS:
        def __init__(self, **kw) -> None:
            calls.append(kw)

        def save(self, path: str) -> None:
            if fail:
                raise RuntimeError("Failed to connect. Probable cause: Unknown")
            subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                            "sine=frequency=440:duration=1", "-y", path], check=True, timeout=30)
    return FakeTTS


def test_gtts_voice_plays_into_the_sink(pulse_server: str, tmp_path: Path) -> None:
    require("ffmpeg", "paplay")
    calls: list[dict] = []
    voice = GttsVoice(GttsVoiceConfig(engine="gtts", language="de"), cache_dir=None, tts_factory=fake_gtts(calls))
    mp3 = voice.synthesize("Hallo \x1b[31mWelt", tmp_path)
    assert mp3.suffix == ".mp3" and mp3.stat().st_size > 0
    assert calls[0]["text"] == "Hallo Welt" and calls[0]["lang"] == "de"
    mp3.unlink()
    with SpeechQueue(voice, PaplayPlayer("stream"), workdir=tmp_path / "speech") as queue:
        utt = queue.say("Hallo")
        assert utt.wait(20) and utt.status == "spoken", utt
    assert utt.seconds == pytest.approx(1.0, abs=0.1)
    assert not (tmp_path / "speech").exists()


def test_gtts_failure_falls_back_to_espeak(tmp_path: Path) -> None:
    require("espeak-ng")
    calls: list[dict] = []
    voice = FallbackVoice(GttsVoice(GttsVoiceConfig(engine="gtts"), cache_dir=None,
                                    tts_factory=fake_gtts(calls, fail=True)), EspeakVoice(EspeakVoiceConfig()))
    wav = voice.synthesize("fallback works", tmp_path)
    assert wav.suffix == ".wav" and wav.read_bytes()[:4] == b"RIFF" and calls
    strict = FallbackVoice(GttsVoice(GttsVoiceConfig(engine="gtts"), cache_dir=None,
                                     tts_factory=fake_gtts([], fail=True)), None)
    with pytest.raises(MediaError, match="gTTS failed"):
        strict.synthesize("no fallback", tmp_path)
    assert isinstance(make_voice(), EspeakVoice)


# --- content window and screenshots ----------------------------------------------------------


def test_capture_png_decodes(xvfb_display: str) -> None:
    require("xdpyinfo")
    wait_for_display(xvfb_display, 5)
    data = capture_png(xvfb_display)
    assert png_size(data) == (1280, 720)
    small = capture_png(xvfb_display, max_width=640)
    assert png_size(small) == (640, 360)
    with pytest.raises(MediaError):
        png_size(data[: len(data) // 2])
    jpeg = capture_jpeg(xvfb_display, max_width=640)
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) > 1000


def test_capture_png_without_scrot_uses_ffmpeg(xvfb_display: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    require("ffmpeg")
    import appliance.media.display as display
    real_which = display.shutil.which
    monkeypatch.setattr(display.shutil, "which", lambda name: None if name == "scrot" else real_which(name))
    assert png_size(capture_png(xvfb_display, max_width=800)) == (800, 450)


def test_display_wait_and_capture_errors() -> None:
    with pytest.raises(MediaError, match="does not answer"):
        wait_for_display(":1234", 0.3)
    with pytest.raises(MediaError, match="on :1234 failed"):
        capture_png(":1234")


def test_concurrent_processes_never_get_the_same_free_display(tmp_path: Path) -> None:
    """Two rehearsals started at once both took :90 (the first free number); the second's Xvfb
    failed ("Server is already active") and its tree streamed the first one's screen. A number
    handed out is reserved until the process exits. Failed before the reservation: all got one number."""
    import random
    first = random.randint(2000, 60000)
    code = ("import sys; from appliance.media.display import free_display; "
            f"print(free_display(range({first}, {first + 4})), flush=True); sys.stdin.read()")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2]) for _ in range(3)]
    try:
        got = [proc.stdout.readline().strip() for proc in procs]
    finally:
        for proc in procs:
            proc.communicate("", timeout=10)
    assert len(set(got)) == 3 and all(g.startswith(":") for g in got), got
    # a number whose holder exited is free again (the kernel dropped its lock: no stale claims)
    from appliance.media.display import free_display, release_display
    again = free_display(range(first, first + 4))
    assert again == f":{first}"
    release_display(again)
    for number in range(first, first + 4):
        Path(f"/tmp/.appliance-X{number}.lock").unlink(missing_ok=True)
