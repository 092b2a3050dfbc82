"""/metrics with prometheus_client: the same sample names as the hand-written format, and the
histograms fed from the event bus (no viewer ever becomes a label)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from appliance.control.metrics import Telemetry


@dataclass
class Ev:
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text.decode()) for s in fam.samples}


def test_scrape_time_figures_keep_their_names_types_and_labels() -> None:
    t = Telemetry()
    text = t.render({"up": ("1 while the controller runs", 1), "restarts_total": ("recoveries", 3),
                     "viewers": ("viewers", 12), "state_info": ("state", 1), "market_cap": ("cap", None)},
                    {"state_info": {"state": "live"}})
    got = samples(text)
    assert got[("retake_appliance_up", ())] == 1
    assert got[("retake_appliance_restarts_total", ())] == 3
    assert got[("retake_appliance_viewers", ())] == 12
    assert got[("retake_appliance_state_info", (("state", "live"),))] == 1
    assert not any(name.startswith("retake_appliance_market_cap") for name, _ in got)  # None: absent
    assert b"# TYPE retake_appliance_restarts_total counter" in text
    assert b"# TYPE retake_appliance_viewers gauge" in text


def test_histograms_from_events_with_no_viewer_label() -> None:
    t = Telemetry()
    t.on_event(Ev("chat", {"id": "m1", "user": {"name": "alice", "id": "u-1"}, "text": "hi"}, 100.0))
    t.on_event(Ev("chat", {"id": "m2", "user": {"name": "bob", "id": "u-2"}, "text": "yo"}, 101.0))
    t.on_event(Ev("reply", {"to": ["m1", "m2"], "text": "hello both"}, 102.5))
    t.on_event(Ev("reply", {"to": ["m1"], "text": "again"}, 200.0))  # answered already: not counted twice
    t.on_event(Ev("utterance_started", {"id": "u", "waited_s": 0.12}, 5.0))
    t.observe_go_live(14.2, started_at=1.0)
    t.observe_go_live(14.2, started_at=1.0)  # the same go-live read twice
    got = samples(t.render({}))
    assert got[("retake_appliance_chat_reply_latency_seconds_count", ())] == 2
    assert got[("retake_appliance_chat_reply_latency_seconds_sum", ())] == 4.0  # 2.5 + 1.5
    assert got[("retake_appliance_chat_reply_latency_seconds_bucket", (("le", "2.0"),))] == 1
    assert got[("retake_appliance_chat_reply_latency_seconds_bucket", (("le", "3.0"),))] == 2
    assert got[("retake_appliance_say_audible_seconds_bucket", (("le", "0.2"),))] == 1
    assert got[("retake_appliance_say_audible_seconds_bucket", (("le", "0.1"),))] == 0
    assert got[("retake_appliance_go_live_duration_seconds_count", ())] == 1
    labels = {k for (_, ls) in got for k, _ in ls}
    assert labels <= {"le", "state", "reason"}
    text = t.render({}).decode()
    assert "_created" not in text
    assert "alice" not in text and "u-1" not in text
