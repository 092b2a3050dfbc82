"""The event bus in memory: ids, the ring buffer, a gap told to a late reader, subscribers."""

from __future__ import annotations

import threading
import time

from appliance.control.events import EventBus


def test_bus_ids_ring_buffer_gap_and_subscribers():
    clock = [1000.0]
    bus = EventBus(capacity=5, clock=lambda: clock[0])
    assert bus.last_id == 1000 * 1_000_000 - 1
    got: list[str] = []
    bus.subscribe(lambda e: 1 / 0)  # a broken subscriber does not stop the others
    unsubscribe = bus.subscribe(lambda e: got.append(e.kind))
    first = bus.publish("chat", {"text": "a"})
    ids = [first.id] + [bus.publish("tip", {"n": i}).id for i in range(9)]
    assert ids == list(range(first.id, first.id + 10))
    unsubscribe()
    bus.publish("state", {})
    assert got == ["chat"] + ["tip"] * 9
    events, gap = bus.since(first.id)
    assert [e.id for e in events] == list(range(first.id + 6, first.id + 11))
    assert gap == (first.id + 1, first.id + 5)
    assert bus.since(bus.last_id) == ([], None)
    started = time.monotonic()
    assert bus.wait(bus.last_id, 0.2) == [] and time.monotonic() - started >= 0.19
    threading.Timer(0.1, lambda: bus.publish("viewers", {"count": 3})).start()
    assert [e.kind for e in bus.wait(bus.last_id, 5)] == ["viewers"]
    restarted = EventBus(clock=lambda: clock[0] + 60)  # a later process: ids keep growing
    assert restarted.publish("state", {}).id > bus.last_id
    assert b"id: " in first.sse() and b"event: chat\n" in first.sse() and b"\ndata: {" in first.sse()
