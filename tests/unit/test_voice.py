"""The speech queue and the gTTS engine's cache and throttle, with fakes (the real voice into a
real sink is in tests/integration/test_media.py and test_voice_engines.py, and end to end)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from appliance.core.errors import InputError
from appliance.scene.model import SceneModel
from appliance.voice import (
    GttsVoice,
    SpeechQueue,
    split_sentences,
)
from appliance.voice.settings import GttsVoiceConfig
from tests.support.voice import FakePlayer, FakeVoice


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


