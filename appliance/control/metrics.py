"""``GET /metrics``: the appliance's Prometheus metrics, with ``prometheus_client``.

Two kinds of figures, one registry per control server (never the library's global one, so two
appliances in one process — tests, a fleet's probe — never mix):

* **Read at scrape time** (state, viewers, encoder fps/speed/bitrate/drops, restarts, ...): the
  lifecycle already holds them; :meth:`Telemetry.render` takes ``{name: (help, value)}`` and
  emits a gauge, or a counter for a name ending in ``_total``, each named
  ``retake_appliance_<name>`` (the names the hand-written format had).
* **Histograms** observed as things happen, from the event bus (:meth:`Telemetry.on_event`):
  ``retake_appliance_chat_reply_latency_seconds`` (a viewer's message seen -> the reply that
  answers it sent; buckets 0.1-10 s), ``retake_appliance_say_audible_seconds`` (an utterance
  queued -> its audio starts playing into the sink; 0.05-2 s) and
  ``retake_appliance_go_live_duration_seconds`` (start or go_live -> initial thumbnail).

Labels are fixed, small sets (the lifecycle state, a hold's reason): never a viewer's name or
id, which would make one time series per viewer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "retake_appliance_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CHAT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0)
SAY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
GO_LIVE_BUCKETS = (2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0)
disable_created_metrics()  # no *_created series: they double the output and nobody graphs them
MAX_PENDING_MESSAGES = 500  # chat messages remembered until their reply (oldest forgotten first)

Values = Mapping[str, tuple[str, "float | int | None"]]


class _Snapshot(Collector):
    """Yields the figures of the last :meth:`Telemetry.render` call (read at scrape time)."""

    def __init__(self) -> None:
        self.values: Values = {}
        self.labels: Mapping[str, Mapping[str, str]] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, value) in self.values.items():
            if value is None:
                continue
            labels = dict(self.labels.get(name, {}))
            if name.endswith("_total"):
                family: Metric = CounterMetricFamily(PREFIX + name[: -len("_total")], help_text,
                                                     labels=list(labels))
            else:
                family = GaugeMetricFamily(PREFIX + name, help_text, labels=list(labels))
            family.add_metric(list(labels.values()), float(value))  # type: ignore[attr-defined]
            yield family


def render_values(values: Values, labels: Mapping[str, Mapping[str, str]] | None = None) -> bytes:
    """The Prometheus text of scrape-time figures alone (no histograms): a held appliance's."""
    snapshot = _Snapshot()
    snapshot.values, snapshot.labels = dict(values), dict(labels or {})
    registry = CollectorRegistry(auto_describe=True)
    registry.register(snapshot)
    return generate_latest(registry)


class Telemetry:
    """The registry behind ``/metrics``: the scrape-time figures and the three histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self.chat_latency = Histogram(
            PREFIX + "chat_reply_latency_seconds",
            "a viewer's message seen -> the reply that answers it sent", buckets=CHAT_BUCKETS,
            registry=self.registry)
        self.say_audible = Histogram(
            PREFIX + "say_audible_seconds", "an utterance queued -> its audio starts in the sink",
            buckets=SAY_BUCKETS, registry=self.registry)
        self.go_live = Histogram(
            PREFIX + "go_live_duration_seconds", "start (or go_live) -> the initial thumbnail uploaded",
            buckets=GO_LIVE_BUCKETS, registry=self.registry)
        self._seen: OrderedDict[str, float] = OrderedDict()  # chat message id -> when it was seen
        self._go_live_observed: set[float] = set()
        self._lock = threading.Lock()

    # -- events (an EventBus subscriber: quick, never blocks) --

    def on_event(self, event: Any) -> None:
        """Feed one bus event (``kind``, ``data``, ``time``)."""
        kind, data = event.kind, event.data or {}
        if kind in ("chat", "tip", "trade", "follow"):
            key = str(data.get("id") or "")
            if key:
                with self._lock:
                    self._seen[key] = float(event.time)
                    while len(self._seen) > MAX_PENDING_MESSAGES:
                        self._seen.popitem(last=False)
        elif kind == "reply":
            with self._lock:
                seen = [self._seen.pop(str(i)) for i in data.get("to") or () if str(i) in self._seen]
            for at in seen:
                self.chat_latency.observe(max(0.0, float(event.time) - at))
        elif kind == "utterance_started" and isinstance(data.get("waited_s"), (int, float)):
            self.say_audible.observe(max(0.0, float(data["waited_s"])))

    def observe_go_live(self, seconds: float | None, started_at: float | None = None) -> None:
        """Record one go-live (once per start: the same ``started_at`` is counted once)."""
        if seconds is None:
            return
        key = started_at if started_at is not None else -1.0
        with self._lock:
            if key in self._go_live_observed:
                return
            self._go_live_observed.add(key)
        self.go_live.observe(seconds)

    # -- scrape --

    def render(self, values: Values, labels: Mapping[str, Mapping[str, str]] | None = None) -> bytes:
        """The Prometheus text of ``values`` (read now) and the histograms."""
        with self._lock:
            self._snapshot.values, self._snapshot.labels = dict(values), dict(labels or {})
            return generate_latest(self.registry)
