"""The heartbeat's decision while not live (skill section 8: "Decide: stream, respond to chat,
or idle"), and its schedule across restarts. Against the sandbox: tests/integration/
test_golive_duties.py."""

from __future__ import annotations

import pytest

from appliance.core.store import StateStore
from appliance.live.heartbeat import Decision, Heartbeat, Reading, decide
from appliance.live.settings import HeartbeatConfig
from appliance.retake.normalize import Comment

CFG = HeartbeatConfig(stream_comments=3, stream_move_pct=20)


def comments(n: int) -> list[Comment]:
    return [Comment(id=str(i), text=f"hello {i}", username=f"viewer{i}") for i in range(n)]


@pytest.mark.parametrize("reading, decision", [
    (Reading(comments=comments(3)), Decision.STREAM),
    (Reading(comments=comments(2), market_cap=130.0, previous_market_cap=100.0), Decision.STREAM),
    (Reading(comments=comments(2), market_cap=110.0, previous_market_cap=100.0), Decision.CHAT),
    (Reading(market_cap=125.0, previous_market_cap=100.0), Decision.STREAM),
    (Reading(market_cap=70.0, previous_market_cap=100.0), Decision.STREAM),  # a fall is news too
    (Reading(market_cap=110.0, previous_market_cap=100.0), Decision.IDLE),
    (Reading(market_cap=110.0), Decision.IDLE),  # no earlier figure: no move
    (Reading(comments=comments(1)), Decision.CHAT),
    (Reading(errors=["status: HTTP 500"]), Decision.IDLE),
])
def test_decide(reading, decision):
    assert decide(reading, CFG)[0] is decision


class Told:
    def notify(self, event: str, text: str, **extra: object) -> None:
        pass


def test_the_schedule_counts_from_the_last_heartbeat_across_restarts(tmp_path):
    now = [50_000.0]
    store = StateStore(tmp_path)
    beat = Heartbeat(HeartbeatConfig(every_s=3600), notifier=Told(), store=store, clock=lambda: now[0])
    assert beat.due() is False  # the first one an interval after the hold began
    now[0] += 3600
    assert beat.due() is True
    store.update(last_heartbeat=now[0] - 600)  # one ran ten minutes ago (before a restart)
    restarted = Heartbeat(HeartbeatConfig(every_s=3600), notifier=Told(), store=StateStore(tmp_path),
                          clock=lambda: now[0])
    assert restarted.due() is False
    now[0] += 3000
    assert restarted.due() is True
