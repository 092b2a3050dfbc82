"""Exactly once across pages: polling alone (no Socket.IO), against the sandbox in its faithful
mode — ``stream/comments`` newest first with timestamps to the second, as the reference's
example, so a burst within one second shows no order a client can read from its times.

Bursts of limit−1, limit, limit+1 and 2×limit+1, with the cursor (the last message read
before the burst) at each page edge, in the same second as the burst or an earlier one, and
the pages in either order: every comment reaches the chat loop once, in order, and is
answered once. Then the issue's own case: 60 viewers post at once over HTTP to a chat loop
that polls on its own threads.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from appliance.chat import ChatServices
from appliance.control.events import EventBus
from appliance.sandbox import viewers
from tests.support.chat import chat_agent, make_chat, wait_for

LIMIT = 10


def fresh_second(margin: float = 0.6) -> None:
    """Wait until at least ``margin`` s of the current wall-clock second are left."""
    while 1.0 - time.time() % 1.0 < margin:
        time.sleep(0.01)


def post_burst(sb, me: str, texts: list[str], prefix: str = "v") -> None:
    """Every comment in one go on the sandbox's loop (a few ms: one second in the page)."""
    async def burst() -> None:
        streamer = sb.platform.the_agent(me)
        for i, text in enumerate(texts):
            await viewers.post_comment(sb.platform, streamer, f"{prefix}{i:03d}", text)
    sb.call(burst)


def answered_once(loop, ids: list[str]) -> None:
    """Each id is answered, and named by exactly one reply we sent."""
    rows = loop.db.query("SELECT to_ids FROM outbox WHERE state = 'sent'")
    counts: dict[str, int] = {}
    for row in rows:
        for i in json.loads(row["to_ids"]):
            counts[i] = counts.get(i, 0) + 1
    assert [loop.journal.state_of(i) for i in ids] == ["answered"] * len(ids)
    assert [counts.get(i, 0) for i in ids] == [1] * len(ids)


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
@pytest.mark.parametrize("same_second", [True, False], ids=["cursor-same-second", "cursor-earlier"])
@pytest.mark.parametrize("burst", [LIMIT - 1, LIMIT, LIMIT + 1, 2 * LIMIT + 1])
def test_a_burst_at_every_page_edge_is_read_once_in_order_and_answered_once(sandbox, tmp_path, burst,
                                                                              same_second, order):
    sandbox.settings(comments_order=order)
    name = f"Edge{burst}{int(same_second)}{order[0]}"
    client, me, _ = chat_agent(sandbox, name)
    post_burst(sandbox, me, [f"old {i}" for i in range(LIMIT + 3)], prefix="h")  # history: more than a page
    loop = make_chat(sandbox, tmp_path, client, me, name, limit=LIMIT, catch_up_pages=10)
    handled: list[str] = []
    loop.on_message = lambda c: handled.append(c.text)
    if not same_second:
        loop.baseline()
        time.sleep(1.0)  # the cursor is a second older than the burst
    fresh_second()
    if same_second:
        post_burst(sandbox, me, ["the cursor"], prefix="c")
        loop.baseline()  # the last message read before the burst: "the cursor", same second
    texts = [f"burst {i}" for i in range(burst)]
    post_burst(sandbox, me, texts)
    loop.poll_once()
    loop.poll_once()  # a second round finds nothing new
    assert handled == texts
    ids = [row["id"] for row in loop.db.query("SELECT id FROM inbox WHERE state = 'answered' ORDER BY rowid")]
    assert len(ids) == burst
    answered_once(loop, ids)


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_sixty_viewers_at_once_over_http_each_reach_the_loop_once_in_order(sandbox, tmp_path, order):
    """The issue's case: polling alone (default limit 50), 60 viewers post at once."""
    sandbox.settings(comments_order=order)
    client, me, _ = chat_agent(sandbox, "SixtyAgent")
    seen: list[tuple[str, str]] = []
    bus = EventBus()
    bus.subscribe(lambda e: e.kind == "chat" and seen.append((e.data["id"], e.data["text"])))
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "SixtyAgent", stop=stop, limit=50, poll_s=2.5,
                     services=ChatServices(publish=bus.publish))
    loop.baseline()
    assert loop.send("I'm live. What should we explore today?")
    loop.start()
    try:
        time.sleep(1.0)
        fresh_second(0.7)

        def post(i: int) -> None:
            requests.post(f"{sandbox.origin}/_sandbox/comments", timeout=10,
                          json={"username": f"viewer{i:02d}", "text": f"hello from {i}", "userDbId": me})

        with ThreadPoolExecutor(60) as pool:
            list(pool.map(post, range(60)))
        posted = [e.text for e in sandbox.platform.chats[me] if e.sender_username.startswith("viewer")]
        wait_for(lambda: len(seen) >= 60, 20, "60 chat events")
        wait_for(lambda: all(loop.journal.state_of(i) == "answered" for i, _ in seen), 60, "60 answered")
        time.sleep(3)  # another poll: nothing comes twice
        assert [text for _, text in seen] == posted and len(posted) == 60
        answered_once(loop, [i for i, _ in seen])
    finally:
        stop.set()
        loop.join(10)
