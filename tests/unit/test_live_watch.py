"""What the builder is told from the event bus (issue 20.3, skill sections 8 and 10): a shutdown
warning (urgent), unusual activity against the recent norm, milestones — each with its
threshold. A real EventBus, a fake clock and a notifier that records; the webhook delivery
itself is tests/integration/test_notify_duties.py."""

from __future__ import annotations

from typing import Any

from appliance.config import parse_config
from appliance.control.events import EventBus
from appliance.core.store import StateStore
from appliance.live.watch import StreamWatch
from tests.support.data import WALLET

AGENT = {"name": "WatchAgent", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": WALLET, "ticker": "WAT"}


class Told:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def notify(self, event: str, text: str, **extra: Any) -> None:
        self.calls.append((event, text, extra))

    def events(self, name: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        return [c for c in self.calls if name is None or c[0] == name]


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def watching(tmp_path, clock: Clock, **notify: Any) -> tuple[EventBus, Told, StateStore]:
    settings = parse_config({"agent": AGENT, "paths": {"state_dir": str(tmp_path)}, "notify": notify})
    told, store, bus = Told(), StateStore(tmp_path), EventBus()
    bus.subscribe(StreamWatch(told, settings, store=store, clock=clock))
    return bus, told, store


def live(bus: EventBus) -> None:
    bus.publish("state", {"state": "live", "detail": "stream #1"})


def test_a_shutdown_warning_is_told_at_once_urgent_and_once(tmp_path):
    clock = Clock()
    bus, told, _ = watching(tmp_path, clock)
    bus.publish("warning", {"text": "Low effort: this stream will be shut down in 10 minutes\x1b[2J",
                            "source": "socket"})
    bus.publish("warning", {"text": "Low effort: this stream will be shut down in 10 minutes\x1b[2J",
                            "source": "poll"})  # the same warning by the other path
    (event, text, extra), = told.calls
    assert event == "shutdown_warning" and extra["urgent"] is True and extra["source"] == "socket"
    assert "shut down in 10 minutes" in text and "crisis" in text and "\x1b" not in text
    clock.now += 61
    bus.publish("warning", {"text": "Low effort: this stream will be shut down in 10 minutes", "source": "socket"})
    assert len(told.events("shutdown_warning")) == 2  # a minute later it is news again


def test_a_chat_surge_far_above_the_norm_is_unusual_activity(tmp_path):
    clock = Clock()
    bus, told, _ = watching(tmp_path, clock, chat_surge_factor=4, chat_surge_min=12)
    live(bus)
    for _minute in range(5):  # a steady 3 messages a minute: the norm
        for _ in range(3):
            clock.now += 20
            bus.publish("chat", {"text": "hi"})
    assert told.events("unusual_activity") == []
    clock.now += 60  # a quiet minute (the norm stays 3: the median)
    for _ in range(11):  # 11 in a minute: past 4 x the norm, not yet chat_surge_min
        clock.now += 1
        bus.publish("chat", {"text": "wow"})
    assert told.events("unusual_activity") == []
    clock.now += 1
    bus.publish("chat", {"text": "wow"})
    (_, text, extra), = told.events("unusual_activity")
    assert "12 chat messages in the last minute" in text
    assert extra["kind"] == "chat_surge" and extra["norm"] == 3 and extra["messages"] == 12
    for _ in range(20):
        clock.now += 1
        bus.publish("chat", {"text": "more"})
    assert len(told.events("unusual_activity")) == 1  # at most every unusual_every_s


def test_no_norm_before_three_minutes_live(tmp_path):
    clock = Clock()
    bus, told, _ = watching(tmp_path, clock, chat_surge_min=5)
    live(bus)
    for _ in range(50):  # the first minutes' rush is not "unusual": there is no norm yet
        clock.now += 1
        bus.publish("chat", {"text": "first!"})
    assert told.events("unusual_activity") == []


def test_viewers_falling_far_below_the_norm_is_unusual_activity(tmp_path):
    clock = Clock()
    bus, told, _ = watching(tmp_path, clock, viewer_drop_fraction=0.5, viewer_drop_min=6, low_viewers=0)
    live(bus)
    for count in [20, 21, 19, 20, 22, 20, 21, 20]:
        clock.now += 30
        bus.publish("viewers", {"count": count})
    clock.now += 30
    bus.publish("viewers", {"count": 11})  # a dip, not half
    assert told.events("unusual_activity") == []
    clock.now += 30
    bus.publish("viewers", {"count": 9})
    (_, text, extra), = told.events("unusual_activity")
    assert extra["kind"] == "viewer_drop" and extra["norm"] == 20 and "fell to 9" in text


def test_viewer_peaks_steps_once_per_stream_and_the_record_across_streams(tmp_path):
    clock = Clock()
    bus, told, store = watching(tmp_path, clock, viewer_steps=[10, 25], viewer_record_min=5, low_viewers=0)
    live(bus)
    for count in (3, 12, 9, 12, 30):
        clock.now += 5
        bus.publish("viewers", {"count": count})
    peaks = told.events("viewer_peak")
    # 12: past the step 10 (the record was 3: too small to call a record); 30: a record (beat 12)
    assert [(p[2]["viewers"], p[2]["record"]) for p in peaks] == [(12, False), (30, True)]
    assert store.data.milestones["viewers"] == 30
    bus.publish("state", {"state": "stopped", "detail": ""})
    # a new watcher (a restart), a new stream: steps again, the record remembered
    bus2, told2, _ = watching(tmp_path, clock, viewer_steps=[10, 25], viewer_record_min=5, low_viewers=0)
    live(bus2)
    for count in (11, 26, 31):
        clock.now += 5
        bus2.publish("viewers", {"count": count})
    assert [(p[2]["viewers"], p[2]["record"]) for p in told2.events("viewer_peak")] == \
        [(11, False), (26, False), (31, True)]


def test_market_cap_steps_are_told_once_each_across_restarts(tmp_path):
    clock = Clock()
    bus, told, _ = watching(tmp_path, clock, market_cap_step=2, market_cap_min=10_000)
    for value in (5_000, 9_999, 10_000, 15_000, 19_000, 41_000, 30_000):
        bus.publish("token", {"market_cap": value, "address": "T"})
    assert [c[2]["step"] for c in told.events("market_cap_step")] == [10_000, 40_000]
    bus2, told2, _ = watching(tmp_path, clock, market_cap_step=2, market_cap_min=10_000)
    bus2.publish("token", {"market_cap": 45_000})
    bus2.publish("token", {"market_cap": 81_000})
    assert [c[2]["step"] for c in told2.events("market_cap_step")] == [80_000]


def test_a_trade_burst_and_a_large_tip(tmp_path):
    clock = Clock()
    bus, told, _ = watching(tmp_path, clock, trade_burst=4, trade_burst_s=60, large_tip_sol=1)
    for _ in range(3):
        clock.now += 25  # 3 trades in 75 s: no burst
        bus.publish("trade", {"amount": 10})
    for _ in range(4):
        clock.now += 5
        bus.publish("trade", {"amount": 10})
    bus.publish("tip", {"amount": 0.5, "user": {"name": "small"}})
    bus.publish("tip", {"amount": 2, "user": {"name": "whale\x07"}})
    assert [c[0] for c in told.calls] == ["trade_burst", "large_tip"]
    assert told.calls[0][2]["trades"] == 4 and "whale tipped 2 SOL" in told.calls[1][1]


def test_every_duty_can_be_switched_off(tmp_path):
    clock = Clock()
    bus, told, _ = watching(tmp_path, clock, chat_surge_factor=0, viewer_drop_fraction=0, viewer_steps=[],
                            market_cap_step=0, trade_burst=0, low_viewers=0, viewer_record_min=10**9)
    live(bus)
    for _ in range(400):
        clock.now += 1
        bus.publish("chat", {"text": "x"})
        bus.publish("trade", {})
        bus.publish("viewers", {"count": 50 if clock.now < 10_300 else 1})
        bus.publish("token", {"market_cap": clock.now * 100})
    assert told.calls == []
