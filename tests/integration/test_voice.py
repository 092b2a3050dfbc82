"""The speech queue and the engines, with fakes where a real process adds nothing (the real
voice into a real sink is in test_media.py and the live end-to-end test)."""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import pytest

from appliance.core.errors import InputError
from appliance.scene.model import SceneModel
from appliance.voice import (
    CommandVoice,
    FallbackVoice,
    GttsVoice,
    SpeechQueue,
    make_voice,
    split_sentences,
)
from appliance.voice.settings import (
    CommandVoiceConfig,
    EspeakVoiceConfig,
    GttsVoiceConfig,
)
from tests.support.media import require


def write_wav(path: Path, seconds: float = 0.05) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * int(8000 * seconds))
    return path


class FakeVoice:
    name = "fake"

    def __init__(self, log: list) -> None:
        self.log = log

    def synthesize(self, text: str, workdir: Path) -> Path:
        self.log.append(("synth", text))
        _fd, name = tempfile.mkstemp(suffix=".wav", dir=workdir)
        return write_wav(Path(name))


class FakePlayer:
    """Plays instantly unless ``gate`` is given: then each play waits for it."""

    def __init__(self, log: list, gate: threading.Event | None = None) -> None:
        self.log, self.gate = log, gate
        self.stopped = 0

    def start(self, wav: Path):
        self.log.append(("play", wav.name))
        player = self

        class Playing:
            def wait(self, timeout: float) -> None:
                if player.gate is not None:
                    player.gate.wait(timeout)

            def stop(self) -> None:
                player.stopped += 1
                if player.gate is not None:
                    player.gate.set()
        return Playing()


def queue(tmp_path: Path, log: list, **kw) -> tuple[SpeechQueue, list]:
    events: list = []
    q = SpeechQueue(FakeVoice(log), kw.pop("player", FakePlayer(log)), workdir=tmp_path / "speech",
                    on_event=lambda kind, data: events.append((kind, data)), **kw)
    return q, events


def test_sentences_are_split_and_long_ones_cut():
    assert split_sentences("Hi there! How are you? Fine.") == ["Hi there!", "How are you?", "Fine."]
    assert split_sentences("你好。世界！") == ["你好。", "世界！"]
    long = split_sentences("word, " * 100, max_chars=50)
    assert all(len(s) <= 50 for s in long) and "".join(long).replace(" ", "") == ("word," * 100)


def test_priority_order_and_events_with_sentence_pipelining(tmp_path):
    log: list = []
    gate = threading.Event()
    q, events = queue(tmp_path, log, player=FakePlayer(log, gate))
    with q:
        first = q.say("First one. Second sentence.", "operator")
        deadline = time.monotonic() + 5
        while ("play", ) not in [e[:1] for e in log] and time.monotonic() < deadline:
            time.sleep(0.01)
        later = [q.say("proactive line", "proactive"), q.say("a reply", "reply"), q.say("the operator", "operator")]
        assert [u.position for u in later] == [1, 1, 1]  # the one speaking is ahead of each
        gate.set()
        assert all(u.wait(5) for u in [first, *later])
    # the second sentence was synthesised while the first played (before its own play)
    synths = [e for e in log if e[0] == "synth"]
    assert log.index(("synth", "Second sentence.")) < [i for i, e in enumerate(log) if e[0] == "play"][1]
    assert [s[1] for s in synths[2:]] == ["the operator", "a reply", "proactive line"]
    kinds = [k for k, _ in events if k in ("utterance_started", "sentence_started", "utterance_finished")]
    assert kinds[:4] == ["utterance_started", "sentence_started", "sentence_started", "utterance_finished"]
    started = [d for k, d in events if k == "sentence_started"]
    assert [d["sentence"] for d in started[:2]] == ["First one.", "Second sentence."]
    assert started[0]["id"] == first.id and first.status == "spoken"
    assert not (tmp_path / "speech").exists()  # the work folder goes at close


def test_bound_and_drop_policy(tmp_path):
    log: list = []
    gate = threading.Event()
    q, events = queue(tmp_path, log, player=FakePlayer(log, gate), max_pending=2)
    with q:
        q.say("speaking now", "reply")
        while not any(e[0] == "play" for e in log):
            time.sleep(0.01)
        r1, r2 = q.say("reply one", "reply"), q.say("reply two", "reply")
        op = q.say("operator wins", "operator")          # evicts the newest lowest: reply two
        assert r2.status == "dropped" and op.status == "queued"
        pro = q.say("proactive", "proactive")            # nothing lower waits: the newcomer goes
        assert pro.status == "dropped" and q.pending() == 2
        assert q.flush() == 2 and r1.status == "dropped" and op.status == "dropped"
        assert q.interrupt() is True
        gate.set()
    dropped = [d["text"] for k, d in events if k == "utterance_dropped"]
    assert dropped == ["reply two", "proactive", "reply one", "operator wins"] or sorted(dropped) == sorted(
        ["reply two", "proactive", "reply one", "operator wins"])
    assert q.dropped == 4
    with pytest.raises(InputError):
        SpeechQueue(FakeVoice([]), FakePlayer([]), workdir=tmp_path / "x").say("\x1b[2J")


def test_stale_replies_are_dropped_but_operator_lines_never(tmp_path):
    now = [0.0]
    log: list = []
    q, _events = queue(tmp_path, log, clock=lambda: now[0], max_wait_s=10)
    reply, op = q.say("old reply", "reply"), q.say("old operator line", "operator")
    now[0] = 100.0
    with q:
        assert reply.wait(5) and op.wait(5)
    assert reply.status == "dropped" and op.status == "spoken"


def test_interrupt_stops_the_rest_of_the_utterance(tmp_path):
    log: list = []
    gate = threading.Event()
    q, _events = queue(tmp_path, log, player=FakePlayer(log, gate))
    with q:
        utt = q.say("One. Two. Three. Four.")
        while not any(e[0] == "play" for e in log):
            time.sleep(0.01)
        assert q.interrupt()
        assert utt.wait(5)
    assert utt.status == "interrupted" and sum(1 for e in log if e[0] == "play") == 1


def test_captions_follow_the_audio_not_the_queue(tmp_path):
    log: list = []
    gate = threading.Event()
    states = []
    scene = SceneModel(on_change=states.append)
    q = SpeechQueue(FakeVoice(log), FakePlayer(log, gate), workdir=tmp_path / "s", on_event=scene.handle)
    with q:
        q.say("Caption one. Caption two.")
        while not any(e[0] == "play" for e in log):
            time.sleep(0.01)
        time.sleep(0.05)
        assert scene.snapshot().caption == "Caption one."
        gate.set()
        deadline = time.monotonic() + 5
        while scene.snapshot().caption and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "Caption two." in [s.caption for s in states] and scene.snapshot().caption == ""


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


def test_gtts_caches_per_text_and_throttles(tmp_path):
    made: list = []
    slept: list = []
    clock = [0.0]

    class FakeTTS:
        def __init__(self, **kw):
            made.append(kw["text"])

        def save(self, path):
            Path(path).write_bytes(b"ID3 fake mp3")

    voice = GttsVoice(GttsVoiceConfig(engine="gtts", min_interval_s=2, cache_entries=2), cache_dir=tmp_path / "cache",
                      tts_factory=FakeTTS, clock=lambda: clock[0],
                      sleep=lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)))
    for text in ("a", "a", "b", "c", "a"):
        voice.synthesize(text, tmp_path)
    assert made == ["a", "b", "c", "a"]  # "a" again came from the cache; evicted after b and c
    assert slept and all(s <= 2 for s in slept)
    assert len(list((tmp_path / "cache").glob("*.mp3"))) == 2


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
