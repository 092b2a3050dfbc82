"""The voice engines with real programs: a command engine (a script writing WAV or raw PCM,
and its fallback), the temp folder left clean, and music ducking under speech in a real sink."""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
import wave

from appliance.scene.model import SceneModel
from appliance.voice import (
    CommandVoice,
    FallbackVoice,
    SpeechQueue,
    make_voice,
)
from appliance.voice.settings import (
    CommandVoiceConfig,
    EspeakVoiceConfig,
    GttsVoiceConfig,
)
from tests.support.media import require
from tests.support.voice import write_wav

SCRIPT = r'''
import sys, wave, io
text = sys.stdin.read()
mode = sys.argv[1]
if mode == "fail":
    sys.exit(3)
frames = b"\x10\x00" * (8000 * max(1, len(text)) // 40)
if mode == "raw":
    sys.stdout.buffer.write(frames)
else:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000); w.writeframes(frames)
    sys.stdout.buffer.write(buf.getvalue())
'''


def test_command_engine_wav_raw_and_fallback(tmp_path, caplog):
    script = tmp_path / "tts.py"
    script.write_text(SCRIPT)
    for mode in ("wav", "raw"):
        cfg = CommandVoiceConfig(engine="command", command=[sys.executable, str(script), mode], output=mode,
                                 raw_sample_rate=8000)
        wav = CommandVoice(cfg).synthesize("hello \x1b[31mthere", tmp_path)
        with wave.open(str(wav)) as w:
            assert w.getframerate() == 8000 and w.getnframes() == 8000 * len("hello there") // 40
    calls: list = []

    class Espeak:
        name = "espeak-ng"

        def synthesize(self, text, workdir):
            calls.append(text)
            return write_wav(workdir / f"e{len(calls)}.wav")

    failing_cfg = CommandVoiceConfig(engine="command", command=[sys.executable, str(script), "fail"])
    failing = FallbackVoice(CommandVoice(failing_cfg), Espeak())
    with caplog.at_level(logging.WARNING, logger="appliance.voice"):
        for _ in range(3):
            failing.synthesize("one", tmp_path)
    assert calls == ["one"] * 3
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1  # ONE warning


def test_no_voice_folder_is_left_in_the_temp_dir(tmp_path, monkeypatch, pulse_server):
    """issue 7 defect 8: every run left an appliance-voice-* folder in /tmp (each engine made
    one with mkdtemp and nobody removed it). Engines now write only where the queue says."""
    require("espeak-ng", "paplay")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    for cfg in (EspeakVoiceConfig(), GttsVoiceConfig(engine="gtts")):
        voice = make_voice(cfg, cache_dir=tmp_path / "cache")
        from appliance.voice import PaplayPlayer
        with SpeechQueue(voice, PaplayPlayer("stream"), workdir=tmp_path / "state-cache" / "speech") as q:
            if cfg.engine == "espeak":
                assert q.say("short").wait(20)
    assert list(temp.iterdir()) == [] and not (tmp_path / "state-cache" / "speech").exists()


def test_music_ducks_while_speaking_and_sink_level_and_mute_are_heard(pulse_server, tmp_path):
    """The music loop into a real sink, recorded from the sink's monitor (what FFmpeg streams):
    the show ducks it on utterance_started and restores it on utterance_finished (pulsectl on
    the stream), and the sink's volume and mute (pulsectl on the sink) change what is recorded."""
    import math
    import struct
    import subprocess

    from appliance.config import parse_config
    from appliance.live.show import Show
    from appliance.media.audio import set_sink_level
    from appliance.voice.music import MusicLoop
    from appliance.voice.settings import MusicConfig
    require("ffmpeg", "pacat", "parec")
    music = tmp_path / "music.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    "-ar", "44100", str(music)], check=True, timeout=30)
    settings = parse_config({"agent": {"name": "Music", "description": "d", "image_url": "https://example.com/a.png",
                                       "wallet_address": "11111111111111111111111111111111", "ticker": "MU"}})
    loop = MusicLoop(MusicConfig(file=music, volume=30, duck_to=8), "stream", 44100).start()
    show = Show(settings, scene=SceneModel(), music=loop)
    rec = subprocess.Popen(["parec", "--device=stream.monitor", "--format=s16le", "--rate=44100", "--channels=2",
                            "--latency-msec=20"], stdout=subprocess.PIPE)
    recorded = bytearray()

    def read() -> None:
        while chunk := rec.stdout.read1(4096):
            recorded.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    marks: list[float] = []  # seconds recorded when each phase began
    try:
        deadline = time.monotonic() + 10
        while len(recorded) < 44100 * 4 and time.monotonic() < deadline:  # a second of music first
            time.sleep(0.05)
        for change in (lambda: None,
                       lambda: show.on_event("utterance_started", {"id": "u", "text": "hi"}),
                       lambda: show.on_event("utterance_finished", {"id": "u", "text": "hi"}),
                       lambda: set_sink_level("stream", volume=50),
                       lambda: set_sink_level("stream", mute=True),
                       lambda: set_sink_level("stream", mute=False, volume=100)):
            change()
            marks.append(len(recorded) / 4 / 44100)
            time.sleep(1.2)
    finally:
        rec.terminate()
        rec.wait(5)
        reader.join(5)
        loop.stop()
        set_sink_level("stream", mute=False, volume=100)

    def level(start: float) -> float:
        chunk = bytes(recorded[int((start + 0.4) * 44100) * 4:int((start + 1.0) * 44100) * 4])
        samples = struct.unpack(f"<{len(chunk) // 2}h", chunk)
        rms = math.sqrt(sum(s * s for s in samples) / max(1, len(samples))) / 32768
        return 20 * math.log10(rms) if rms else -200.0

    normal, ducked, restored, half, muted, back = (level(m) for m in marks)
    assert normal > -70, f"music not heard: {normal:.1f} dBFS"
    # PulseAudio volumes are cubic: 8 % vs 30 % is 20*log10((8/30)**3) = -34 dB; a 50 % sink is -18 dB
    assert ducked < normal - 25 and abs(restored - normal) < 2, (normal, ducked, restored)
    assert -24 < half - normal < -12 and muted < -120 and abs(back - normal) < 2, (normal, half, muted, back)
