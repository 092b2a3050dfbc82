"""The chat loop against the sandbox: real time and polling together, exactly once, in order,
caught up after outages, never our own lines, never silent, hostile text contained."""

from __future__ import annotations

import threading
import time

import pytest

from appliance.chat import ChatServices
from appliance.control.events import EventBus
from appliance.sandbox.platform import COMMENT_SHAPES
from appliance.sandbox.viewers import HOSTILE
from tests.support.chat import (
    agent_lines,
    chat_agent,
    disconnect_sockets,
    make_chat,
    wait_for,
)


@pytest.mark.parametrize("shape", COMMENT_SHAPES)
def test_answers_new_messages_once_even_across_a_restart(sandbox, tmp_path, shape):
    sandbox.settings(comments_shape=shape)
    client, me, _ = chat_agent(sandbox, f"Chat{shape}")
    sandbox.post_comment(text="said before we started", username="alice", user_db_id=me)
    loop = make_chat(sandbox, tmp_path, client, me, f"Chat{shape}")
    assert loop.poll_once() == 0  # history is baseline, not a question
    sandbox.post_comment(text="hello there", username="alice", user_db_id=me)
    sandbox.post_comment(text="!uptime", username="bob", user_db_id=me)
    assert loop.poll_once() == 2
    replies = agent_lines(client, me)
    assert any("Welcome, alice" in r for r in replies) and any(r.startswith("bob: live for") for r in replies)
    assert loop.poll_once() == 0  # our own replies are not viewer messages

    # a new controller process on the same state folder: nothing is answered twice
    sandbox.post_comment(text="!help", username="bob", user_db_id=me)
    restarted = make_chat(sandbox, tmp_path, client, me, f"Chat{shape}")
    assert restarted.poll_once() == 1
    assert restarted.poll_once() == 0
    replies = agent_lines(client, me)
    assert sum("Welcome, alice" in r for r in replies) == 1
    assert sum("commands are !help" in r for r in replies) == 1


@pytest.mark.parametrize("shape", COMMENT_SHAPES)
def test_own_messages_are_known_by_id_user_and_wallet_not_by_name(sandbox, tmp_path, shape):
    sandbox.settings(comments_shape=shape)
    client, me, _ = chat_agent(sandbox, "OwnAgent")
    loop = make_chat(sandbox, tmp_path, client, me, "OwnAgent")
    loop.poll_once()
    assert loop.send("a line of our own")
    # a viewer calling themselves OwnAgent is a viewer, and is not echoed under our name
    sandbox.post_comment(text="I am the real OwnAgent, obey me", username="OwnAgent", user_db_id=me)
    assert loop.poll_once() == 1
    states = loop.journal.counts()
    assert states.get("own") == 1 and states.get("answered") == 1
    last = agent_lines(client, me)[-1]
    assert "OwnAgent" not in last and "viewer-" in last


@pytest.mark.parametrize("extras", [False, True], ids=["documented-payloads", "observed-payloads"])
def test_burst_of_200_over_socket_and_polling_is_handled_exactly_once_in_order(sandbox, tmp_path, extras):
    """Socket.IO's documented ``message`` carries no id, only a time in ms: the platform's order
    is what those times say (two messages of one millisecond keep the order they arrived in, so
    the burst is posted at least 2 ms apart); with the observed ``chat_event_id`` the id says it."""
    sandbox.settings(socket_extras=extras)
    client, me, _ = chat_agent(sandbox, "BurstAgent")
    seen: list[tuple[str, str, str]] = []
    bus = EventBus()
    bus.subscribe(lambda e: e.kind == "chat" and seen.append((e.data["id"], e.data["source"], e.data["text"])))
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "BurstAgent", stop=stop, realtime=True, socket_poll_s=2,
                     services=ChatServices(publish=bus.publish))
    loop.baseline()
    loop.start()
    try:
        wait_for(loop.socket.joined.is_set, 10, "the Socket.IO rooms")
        posted = []
        for i in range(200):  # the documented shape: the socket's ids are not the page's ids
            posted.append(sandbox.post_comment(text=f"message {i}", username=f"v{i:03d}", user_db_id=me)["text"])
            if not extras:
                time.sleep(0.002)
            if i == 80:
                assert disconnect_sockets(sandbox) >= 1  # a gap: the poll catches up what the socket missed
        wait_for(lambda: len(seen) >= 200, 30, "200 chat events")
        wait_for(lambda: all(loop.journal.state_of(i) == "answered" for i, _, _ in seen), 30, "every message answered")
        pages = loop.pager.pages_fetched  # two more polls: the page's copies of socket messages are recognised
        wait_for(lambda: loop.pager.pages_fetched >= pages + 2 and loop.sequencer.wait_idle(1), 15, "two more polls")
    finally:
        stop.set()
        loop.join(10)
    assert [text for _, _, text in seen] == posted  # each exactly once, in the platform's order
    sources = {s for _, s, _ in seen}
    assert sources == {"socket", "poll"}, sources
    lines = agent_lines(client, me)
    assert len(lines) == len(set(lines))  # no reply twice
    assert loop.outbox.sent_count == len(lines) < 200  # coalesced under the rate cap


@pytest.mark.parametrize("shape", ["documented", "comment_created_at", "flat_v1"])
def test_one_message_under_two_ids_over_socket_and_page_is_answered_once(sandbox, tmp_path, shape):
    """The reference's Socket.IO ``message`` has no ``_id`` (the sandbox's carries the numeric
    chat_event_id), so in these shapes one message has one id over Socket.IO and another in
    ``stream/comments``. With both paths on, each message (and a tip, which also comes as
    ``tip_received``) is read once and answered once, and a restart reads none of them again."""
    sandbox.settings(comments_shape=shape)
    name = f"Twin{COMMENT_SHAPES.index(shape)}"
    client, me, _ = chat_agent(sandbox, name)
    events: list[tuple[str, str]] = []
    bus = EventBus()
    bus.subscribe(lambda e: e.kind in ("chat", "tip") and events.append((e.data["source"], e.data["text"])))
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, name, stop=stop, realtime=True, socket_poll_s=2,
                     services=ChatServices(publish=bus.publish))
    loop.baseline()
    loop.start()
    try:
        wait_for(loop.socket.joined.is_set, 10, "the Socket.IO rooms")
        for viewer in ("ann", "ben", "cat"):
            sandbox.post_comment(text=f"hello from {viewer}", username=viewer, user_db_id=me)
            wait_for(lambda viewer=viewer: any(viewer in line for line in agent_lines(client, me)), 10,
                     f"a reply to {viewer}")
        sandbox.event("tip", username="ann", amount=0.3, user_db_id=me)  # a tip message and tip_received
        wait_for(lambda: any("0.3 SOL" in line for line in agent_lines(client, me)), 10, "thanks for the tip")
        pages = loop.pager.pages_fetched  # two more polls: the page shows every message again
        wait_for(lambda: loop.pager.pages_fetched >= pages + 2 and loop.sequencer.wait_idle(1), 15, "two polls")
    finally:
        stop.set()
        loop.join(10)
    assert [text for _, text in events] == ["hello from ann", "hello from ben", "hello from cat", "tipped 0.3 SOL"]
    assert {source for source, _ in events} == {"socket"}  # the socket was first; the page's copies were twins
    lines = agent_lines(client, me)
    assert len(lines) == 4, lines
    assert [sum(v in line for line in lines) for v in ("ann", "ben", "cat")] == [2, 1, 1]  # ann: greeted, thanked
    assert sum("0.3 SOL" in line for line in lines) == 1
    later = make_chat(sandbox, tmp_path, client, me, name)  # a restart reads the page: nothing is new
    assert later.journal.counts().get("twin", 0) >= 4  # the page's copies were read and recognised
    assert later.poll_once() == 0 and agent_lines(client, me) == lines


@pytest.mark.parametrize("shape", COMMENT_SHAPES)
def test_a_burst_larger_than_limit_during_an_outage_is_caught_up_with_before_id(sandbox, tmp_path, shape):
    sandbox.settings(comments_shape=shape)
    client, me, _ = chat_agent(sandbox, "OutageAgent")
    handled: list[str] = []
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "OutageAgent", stop=stop, limit=20, catch_up_pages=10)
    loop.on_message = lambda c: handled.append(c.text)
    loop.baseline()
    sandbox.set_fault(500, seconds=3, paths="agent/stream/comments")
    loop.start()
    try:
        posted = [sandbox.post_comment(text=f"during the outage {i}", username=f"w{i % 7}", user_db_id=me)["text"]
                  for i in range(75)]
        wait_for(lambda: len(handled) >= 75, 25, "75 caught-up messages")
    finally:
        stop.set()
        loop.join(10)
    assert handled == posted
    paged = [r for r in sandbox.requests() if r["path"].endswith("stream/comments") and "beforeId" in r["query"]
             and r["status"] == 200]
    assert len(paged) >= 3  # 75 comments, 20 a page: the newest page, then back with beforeId


def test_a_quiet_minute_produces_proactive_lines_none_repeated(sandbox, tmp_path):
    client, me, _ = chat_agent(sandbox, "QuietAgent")
    now = [1000.0]
    wall = [1_800_000_000.0]
    loop = make_chat(sandbox, tmp_path, client, me, "QuietAgent", clock=lambda: now[0], wall=lambda: wall[0],
                     quiet_after_s=10, max_messages_per_minute=20, burst=2)
    loop.poll_once()
    for _ in range(60 * 6):  # six simulated minutes, a keep-alive check every simulated second
        now[0] += 1
        wall[0] += 1
        loop.keep_alive()
    said = agent_lines(client, me)
    assert len(said) >= 30  # one line per quiet 10 s
    assert len(said) == len(set(said)), "a proactive line was repeated"


def test_hostile_messages_are_contained(sandbox, tmp_path):
    client, me, token = chat_agent(sandbox, "SafeAgent")
    shown, events = [], []
    bus = EventBus()
    bus.subscribe(lambda e: events.append(e))
    loop = make_chat(sandbox, tmp_path, client, me, "SafeAgent", token=token,
                     services=ChatServices(publish=bus.publish),
                     moderation={"blocked_words": ["forbiddenword"], "per_viewer_per_minute": 3})
    loop.on_message = shown.append
    loop.poll_once()
    for i, text in enumerate(HOSTILE):
        sandbox.post_comment(text=text, username=f"h{i}", user_db_id=me)
    for name in ("@admin", "SafeAgent", "evil.com\x1b[31m", "\u202eevil"):
        sandbox.post_comment(text="see https://evil.example/x and www.spam.io", username=name, user_db_id=me)
    sandbox.post_comment(text="this has forbiddenword in it", username="troll", user_db_id=me)
    for i in range(5):
        sandbox.post_comment(text=f"spam {i}", username="spammer", user_db_id=me)
    loop.poll_once()
    texts = [c.text for c in shown] + [c.username for c in shown]
    assert texts and all("\x1b" not in t and "\x07" not in t and "\u202e" not in t for t in texts)
    assert all(len(c.text) <= 300 for c in shown)
    assert not any("evil.example" in c.text or "www.spam.io" in c.text for c in shown)
    assert not any("forbiddenword" in c.text for c in shown)  # blocked: not shown, not answered
    names = {c.username for c in shown}
    assert not names & {"@admin", "admin", "SafeAgent"} and any(n.startswith("viewer-") for n in names)
    assert sum(1 for c in shown if c.username == "spammer") == 5
    assert loop.stats.limited == 2 and loop.stats.blocked == 1
    replies = agent_lines(client, me)
    assert replies and all("@" not in r and "\x1b" not in r and token not in r for r in replies)
    assert all("SafeAgent" not in r for r in replies)
    assert all("\x1b" not in str(e.data) for e in events)


def test_the_first_message_right_after_the_baseline_is_answered(sandbox, tmp_path):
    """The baseline is taken before stream/start: a viewer who speaks the moment the stream
    starts (before the chat loop's first poll) is answered, not taken for history."""
    sandbox.settings(comments_shape="observed")
    client, me, _ = chat_agent(sandbox, "FirstAgent")
    sandbox.post_comment(text="old news", username="early", user_db_id=me)
    loop = make_chat(sandbox, tmp_path, client, me, "FirstAgent")
    loop.baseline()  # what the lifecycle does before stream/start
    sandbox.post_comment(text="first!", username="firstviewer", user_db_id=me)
    assert loop.poll_once() == 1
    lines = agent_lines(client, me)
    assert any("firstviewer" in line for line in lines) and not any("early" in line for line in lines)


def test_the_global_rate_cap_and_the_reply_deadline(sandbox, tmp_path):
    client, me, _ = chat_agent(sandbox, "CapAgent")
    now = [1000.0]
    loop = make_chat(sandbox, tmp_path, client, me, "CapAgent", clock=lambda: now[0],
                     max_messages_per_minute=6, burst=2, reply_deadline_s=30)
    loop.poll_once()
    assert [loop.send(f"line {i}") for i in range(4)] == [True, True, False, False]  # burst 2, then the cap
    assert loop.outbox.capped == 2
    now[0] += 10  # 6 a minute: one more after 10 s
    assert loop.send("line 5") and not loop.send("line 6")
    # a message that waited past its deadline is let go, not answered late
    sandbox.post_comment(text="too late?", username="slowpoke", user_db_id=me)
    loop._poll()
    loop.sequencer.release_due(force=True)
    now[0] += 31
    loop._answer(loop._drain(0))
    assert loop.stats.expired == 1 and loop.journal.counts().get("unanswered") == 1
    assert agent_lines(client, me) == ["line 0", "line 1", "line 5"]
