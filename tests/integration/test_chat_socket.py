"""The chat's Socket.IO client against the sandbox in its faithful mode: ``joinRoom`` gets no
acknowledgement, payloads carry only the documented fields. The rooms are joined without
waiting for an answer, confirmed by their traffic, followed as the stream goes (token, session)
and left at stop; every documented server event is handled; a platform warning is published,
never answered."""

from __future__ import annotations

import threading
import time

import pytest

from appliance.chat import ChatServices
from appliance.chat.loop import is_warning
from appliance.control.events import EventBus
from tests.support.chat import agent_lines, chat_agent, make_chat, wait_for


def recording_bus(*kinds: str) -> tuple[EventBus, list[tuple[str, dict]]]:
    bus = EventBus()
    got: list[tuple[str, dict]] = []
    bus.subscribe(lambda e: e.kind in kinds and got.append((e.kind, dict(e.data))))
    return bus, got


def rooms_of(sandbox) -> set[str]:
    return {room for client in sandbox.sockets()["clients"] for room in client["rooms"]}


def test_the_rooms_are_joined_without_an_ack_and_chat_comes_in_real_time(sandbox, tmp_path):
    client, me, _ = chat_agent(sandbox, "NoAckAgent")
    bus, got = recording_bus("chat")
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "NoAckAgent", stop=stop, realtime=True, poll_s=5,
                     quiet_poll_s=5, socket_poll_s=60, services=ChatServices(publish=bus.publish))
    loop.baseline()
    started = time.monotonic()
    loop.start()
    try:
        wait_for(loop.socket.joined.is_set, 3, "the joins sent (no acknowledgement to wait for)")
        assert time.monotonic() - started < 3
        wait_for(lambda: rooms_of(sandbox) == {me, f"live_{me}"}, 3, "both rooms joined")
        assert not loop.socket.confirmed.is_set()  # nothing has come through the rooms yet
        pages = loop.pager.pages_fetched
        posted = time.monotonic()
        sandbox.post_comment(text="anyone there?", username="early", user_db_id=me)
        wait_for(lambda: got, 3, "the comment over Socket.IO")
        assert got[0][1]["source"] == "socket" and time.monotonic() - posted < 1.0
        assert loop.socket.confirmed.is_set()  # confirmed by traffic
        wait_for(lambda: any("early" in line for line in agent_lines(client, me)), 5, "the reply")
        assert loop.pager.pages_fetched - pages <= 1  # the socket brought it, not a poll
    finally:
        stop.set()
        loop.join(10)
    events = [(e["event"], e["room"]) for e in sandbox.sockets()["events"]]
    assert ("leaveRoom", me) in events and ("leaveRoom", f"live_{me}") in events  # left at stop


def test_the_rooms_follow_the_stream_and_every_documented_event_is_handled(sandbox, tmp_path):
    client, me, _ = chat_agent(sandbox, "RoomsAgent")
    client.prepare_verify()
    client.verify("https://x.com/operator/status/1234567890")
    token: list[str | None] = [None]
    bus, got = recording_bus("chat", "tip", "trade", "follow", "session_started", "pinned", "newtrade")
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "RoomsAgent", stop=stop, realtime=True,
                     services=ChatServices(publish=bus.publish, token_address=lambda: token[0]))
    loop.baseline()
    loop.start()
    try:
        wait_for(loop.socket.joined.is_set, 5, "the rooms")
        key = client.rtmp().key.reveal()
        started = client.stream_start()
        token[0] = started.token.tokenAddress
        sandbox.call(lambda: sandbox.platform.on_publish(key))  # live: session_started in live_
        wait_for(lambda: any(k == "session_started" for k, _ in got), 5, "session_started")
        session = next(d for k, d in got if k == "session_started")["session_id"]
        wait_for(lambda: {f"trades_{token[0]}", f"{me}/{session}"} <= rooms_of(sandbox), 5,
                 "the token's trade room and the session's room")
        comment = sandbox.post_comment(text="pin this", username="fan", user_db_id=me)
        sandbox.event("follow", username="fan", user_db_id=me)
        sandbox.event("tip", username="fan", amount=0.25, user_db_id=me)
        sandbox.event("trade", username="fan", amount=40.0, user_db_id=me)
        sandbox.pin(comment["chat_event_id"], user_db_id=me)
        wait_for(lambda: {"chat", "follow", "tip", "trade", "pinned", "newtrade"} <= {k for k, _ in got}, 10,
                 "every kind of event")
        wait_for(lambda: sum("0.25 SOL" in line for line in agent_lines(client, me)) == 1, 10, "one thanks")
    finally:
        stop.set()
        loop.join(10)
    kinds = [k for k, _ in got]
    assert kinds.count("tip") == 1  # the tip message and tip_received: one tip
    assert kinds.count("trade") == 1 and kinds.count("newtrade") == 1
    newtrade = next(d for k, d in got if k == "newtrade")
    assert newtrade == {"address": token[0], "action": "buy", "usd": 40.0, "ticker": "CLI"}
    pinned = next(d for k, d in got if k == "pinned")
    assert pinned["pinned"] is True and pinned["text"] == "pin this" and pinned["name"] == "fan"
    left = {e["room"] for e in sandbox.sockets()["events"] if e["event"] == "leaveRoom"}
    assert left == {me, f"live_{me}", f"trades_{token[0]}", f"{me}/{session}"}


@pytest.mark.parametrize("realtime", [True, False], ids=["socket-and-polling", "polling-only"])
def test_a_platform_warning_is_published_once_and_never_answered(sandbox, tmp_path, realtime):
    client, me, _ = chat_agent(sandbox, "WarnedAgent")
    bus, got = recording_bus("warning", "chat")
    shown: list[str] = []
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "WarnedAgent", stop=stop, realtime=realtime, socket_poll_s=2,
                     services=ChatServices(publish=bus.publish))
    loop.on_message = lambda c: shown.append(c.text)
    loop.baseline()
    loop.start()
    try:
        if realtime:
            wait_for(loop.socket.joined.is_set, 5, "the rooms")
        sandbox.warn("Low-effort stream: it will be shut down in 10 minutes", user_db_id=me)
        sandbox.post_comment(text="shutdown warning lol", username="prankster", user_db_id=me)  # a viewer: chat
        wait_for(lambda: any(k == "warning" for k, _ in got), 10, "the warning event")
        wait_for(lambda: any("prankster" in line for line in agent_lines(client, me)), 10, "the viewer answered")
        sandbox.warn("Low-effort stream: it will be shut down in 10 minutes", user_db_id=me)  # said again
        time.sleep(3)  # both paths have seen everything by now
    finally:
        stop.set()
        loop.join(10)
    warnings = [d for k, d in got if k == "warning"]
    assert len(warnings) == 1  # one event however many paths (and repeats) brought it
    assert warnings[0]["text"] == "Low-effort stream: it will be shut down in 10 minutes"
    assert warnings[0]["source"] == ("socket" if realtime else "poll") and warnings[0]["sender"] == "platform"
    assert [d["text"] for k, d in got if k == "chat"] == ["shutdown warning lol"]
    assert shown == ["shutdown warning lol"]  # never on screen or in the voice as a viewer's line
    assert not any("Low-effort" in line or "shut down" in line for line in agent_lines(client, me))


def test_what_is_a_warning_and_what_is_not_chat(sandbox, tmp_path):
    assert all(is_warning(k) for k in ("warning", "shutdown_warning", "shutdown", "platform_warning"))
    assert not any(is_warning(k) for k in ("message", "tip", "trade", "follow", "jail", "system"))
    sandbox.settings(comments_shape="observed")  # a shape whose items carry their type
    client, me, _ = chat_agent(sandbox, "KindAgent")
    loop = make_chat(sandbox, tmp_path, client, me, "KindAgent")
    loop.poll_once()
    sandbox.call(lambda: sandbox.platform.add_chat(sandbox.platform.the_agent(me), text="user muted", username="mod",
                                                   user_id="", wallet="", pfp="", fid=0, type_="jail"))
    sandbox.post_comment(text="hi", username="ann", user_db_id=me)
    assert loop.poll_once() == 1
    assert loop.stats.ignored == 1 and loop.journal.counts().get("ignored") == 1
    assert [line for line in agent_lines(client, me) if "muted" in line] == []


def test_two_viewers_saying_the_same_in_one_second_stay_two_viewers(sandbox, tmp_path):
    """The documented payloads share no sender id (the page has the wallet, the socket the user
    id): one message seen by both paths links the two ids to one viewer only when the match is
    certain — never two viewers' "gm" of the same second."""
    client, me, _ = chat_agent(sandbox, "SameAgent")
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "SameAgent", stop=stop, realtime=True, socket_poll_s=2)
    loop.baseline()
    loop.start()
    try:
        wait_for(loop.socket.joined.is_set, 5, "the rooms")
        sandbox.post_comment(text="gm", username="ann", user_db_id=me)
        sandbox.post_comment(text="gm", username="ben", user_db_id=me)
        sandbox.post_comment(text="first time here", username="cat", user_db_id=me)
        wait_for(lambda: loop.journal.counts().get("twin", 0) >= 3, 15, "the page's copies recognised")
        viewers = {v.name: v for v in loop.memory.list()}
        assert set(viewers) == {"ann", "ben", "cat"} and all(v.messages == 1 for v in viewers.values())
        cat = [r["alias"] for r in loop.db.query("SELECT alias FROM aliases")]
        assert len(cat) == 1  # cat's page copy was certain: its wallet is now cat's; the two "gm" were not linked
    finally:
        stop.set()
        loop.join(10)
