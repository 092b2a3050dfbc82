"""The event bus and GET /events (Server-Sent Events) and POST /reply, over real HTTP against a
chat loop on the sandbox: a comment reaches an outside client within a second, a client that
reconnects with Last-Event-ID misses nothing, and an outside agent answers through /reply."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from typing import Any

import requests

from appliance.chat import ChatServices
from appliance.control.api import ControlServer
from appliance.control.events import EventBus
from tests.support.chat import agent_lines, chat_agent, make_chat, wait_for
from tests.support.control import FakeCommands


class SseClient:
    """Reads GET /events over a plain socket on a thread (so closing it is immediate);
    ``events`` is a queue of (id, kind, data, received_at)."""

    def __init__(self, url: str, token: str, last_id: int | None = None) -> None:
        host, port = url.split("//", 1)[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        extra = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                          f"{extra}Accept: text/event-stream\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        status = self.file.readline().decode()
        assert " 200 " in status, status
        headers = {}
        while (line := self.file.readline().decode().strip()):
            key, _, value = line.partition(":")
            headers[key.lower()] = value.strip()
        assert headers["content-type"].startswith("text/event-stream")
        self.events: queue.Queue[tuple[int, str, dict[str, Any], float]] = queue.Queue()
        self.retry: str | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.file:
                raw = line.decode("utf-8").rstrip("\n")
                if raw == "":
                    if "data" in fields:
                        self.events.put((int(fields["id"]), fields["event"], json.loads(fields["data"]),
                                         time.monotonic()))
                    fields = {}
                elif raw.startswith("retry:"):
                    self.retry = raw.split(":", 1)[1].strip()
                elif not raw.startswith(":"):
                    key, _, value = raw.partition(":")
                    fields[key] = value.lstrip(" ")
        except (OSError, ValueError):
            pass

    def next(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if predicate(event):
                return event

    def drain(self, settle: float = 0.5) -> list[tuple[int, str, dict[str, Any], float]]:
        out = []
        while True:
            try:
                out.append(self.events.get(timeout=settle))
            except queue.Empty:
                return out

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ChatCommands(FakeCommands):
    """The control API's commands over a bare chat loop (no lifecycle needed for /events, /reply)."""

    def __init__(self, loop) -> None:
        super().__init__()
        self.loop = loop

    def chat(self, message): return {"sent": self.loop.send(message)}
    def reply(self, message_id, text, routes=None): return self.loop.reply_to(message_id, text, routes)


def serve(tmp_path, loop, bus):
    return ControlServer(ChatCommands(loop), state_dir=tmp_path / "control", port=0, bus=bus).start()


def test_events_deliver_a_comment_within_a_second_and_resume_without_gaps(sandbox, tmp_path):
    client, me, _ = chat_agent(sandbox, "FeedAgent")
    bus = EventBus()
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "FeedAgent", stop=stop, realtime=True,
                     services=ChatServices(publish=bus.publish))
    loop.baseline()
    loop.start()
    server = serve(tmp_path, loop, bus)
    url = f"http://127.0.0.1:{server.port}"
    try:
        assert requests.get(f"{url}/events", timeout=5).status_code == 401
        wait_for(loop.socket.joined.is_set, 10, "the Socket.IO rooms")
        sse = SseClient(url, server.token)
        posted_at = time.monotonic()
        sandbox.post_comment(text="hello feed", username="alice", user_db_id=me)
        event = sse.next(lambda e: e[1] == "chat" and e[2]["data"]["text"] == "hello feed")
        assert event[3] - posted_at < 1.0, f"{event[3] - posted_at:.2f} s"
        assert event[2]["data"]["user"]["name"] == "alice"
        assert sse.retry is not None
        reply = sse.next(lambda e: e[1] == "reply")
        assert event[2]["data"]["id"] in reply[2]["data"]["to"]
        last_seen = reply[0]
        sse.drain(0.3)
        sse.close()

        # while the client is away: more chat, more replies
        missed = [sandbox.post_comment(text=f"while away {i}", username=f"bob{i}", user_db_id=me)["text"]
                  for i in range(5)]
        wait_for(lambda: sum(e.kind == "reply" for e in bus.since(last_seen)[0]) >= 1 and all(
            loop.journal.state_of(e.data["id"]) == "answered"
            for e in bus.since(last_seen)[0] if e.kind == "chat") and sum(
            e.kind == "chat" for e in bus.since(last_seen)[0]) == 5, 10, "answers")
        expected = [e.id for e in bus.since(last_seen)[0]]
        again = SseClient(url, server.token, last_id=last_seen)
        got = again.drain(0.5)
        again.close()
        ids = [e[0] for e in got]
        assert ids[:len(expected)] == expected and ids == sorted(set(ids))  # nothing missed, nothing twice
        assert ids[0] == last_seen + 1  # contiguous: no gap
        chats = [e[2]["data"]["text"] for e in got if e[1] == "chat"]
        assert chats == missed
    finally:
        server.close()
        stop.set()
        loop.join(10)


def test_a_client_too_far_behind_is_told_of_the_gap(tmp_path, sandbox):
    client, me, _ = chat_agent(sandbox, "GapAgent")
    bus = EventBus(capacity=4)
    loop = make_chat(sandbox, tmp_path, client, me, "GapAgent", services=ChatServices(publish=bus.publish))
    server = serve(tmp_path, loop, bus)
    try:
        first = bus.publish("state", {"state": "live"}).id
        for i in range(10):
            bus.publish("viewers", {"count": i})
        sse = SseClient(f"http://127.0.0.1:{server.port}", server.token, last_id=first)
        got = sse.drain(0.5)
        sse.close()
        assert got[0][1] == "gap" and got[0][2]["data"] == {"from_id": first + 1, "to_id": first + 6,
                                                              "reason": "older than the event buffer"}
        assert [e[2]["data"]["count"] for e in got[1:]] == [6, 7, 8, 9]
    finally:
        server.close()


def test_an_outside_agent_answers_through_reply_and_the_host_covers_its_silence(sandbox, tmp_path):
    client, me, _ = chat_agent(sandbox, "OutsideAgent")
    bus = EventBus()
    stop = threading.Event()
    loop = make_chat(sandbox, tmp_path, client, me, "OutsideAgent", stop=stop, responder="external",
                     external={"cover_after_s": 2}, services=ChatServices(publish=bus.publish))
    loop.baseline()
    loop.start()
    server = serve(tmp_path, loop, bus)
    url, headers = f"http://127.0.0.1:{server.port}", {"Authorization": f"Bearer {server.token}"}
    try:
        sse = SseClient(url, server.token)
        sandbox.post_comment(text="what are you building?", username="carol", user_db_id=me)
        event = sse.next(lambda e: e[1] == "chat")
        asked = event[2]["data"]["id"]  # the id the feed gives (the page's _id in the documented shape)
        assert event[2]["data"]["text"] == "what are you building?"
        answer = requests.post(f"{url}/reply", headers=headers, timeout=10,
                               json={"message_id": asked, "text": "carol: a chat engine, live"})
        assert answer.status_code == 200 and answer.json()["sent"] is True, answer.text
        assert loop.journal.state_of(asked) == "answered"
        sandbox.post_comment(text="anyone there?", username="dave", user_db_id=me)
        ignored = sse.next(lambda e: e[1] == "chat")[2]["data"]["id"]
        wait_for(lambda: loop.journal.state_of(ignored) == "answered", 10, "the host covering")
        lines = agent_lines(client, me)
        assert lines.count("carol: a chat engine, live") == 1 and any("dave" in line for line in lines)
        bad = requests.post(f"{url}/reply", headers=headers, json={"message_id": "nope", "text": "x"}, timeout=5)
        assert bad.status_code == 404 and "no message" in bad.json()["error"]
        assert requests.post(f"{url}/reply", headers=headers, json={"text": "x"}, timeout=5).status_code == 400
        assert requests.post(f"{url}/reply", json={"message_id": "x", "text": "x"}, timeout=5).status_code == 401
        sse.close()
    finally:
        server.close()
        stop.set()
        loop.join(10)


def test_the_show_hears_the_chat_bus_and_speaks_replies_once(sandbox, tmp_path):
    """app.py's wiring: the chat's events reach show.on_event (the scene's chat panel), a reply
    routed to voice is show.speak (priority reply; proactive lines proactive) and to caption
    show.caption, and the voice publishes its utterance events on the bus exactly once, from
    where the show hears them (the caption of each sentence, the avatar's mouth)."""
    from appliance.app import connect_show, reply_outputs
    from appliance.config import parse_config
    from appliance.live.show import Show
    from appliance.scene.model import SceneModel
    from appliance.voice import SpeechQueue
    from tests.support.data import agent_section
    from tests.support.voice import FakePlayer, FakeVoice

    bus, events, captions = EventBus(), [], []
    bus.subscribe(events.append)
    scene = SceneModel(title="ShowAgent")
    show = Show(parse_config({"agent": agent_section("ShowAgent")}), scene=scene)
    show.voice = SpeechQueue(FakeVoice([]), FakePlayer([]), workdir=tmp_path / "speech", on_event=bus.publish).start()
    heard: list[str] = []
    scene.on_change = lambda state: heard.append(state.caption)
    show.caption = lambda text: (captions.append(text), Show.caption(show, text))  # type: ignore[method-assign]
    connect_show(bus, show)
    client, me, _ = chat_agent(sandbox, "ShowAgent")
    now = [1000.0]
    loop = make_chat(sandbox, tmp_path, client, me, "ShowAgent", clock=lambda: now[0], quiet_after_s=10,
                     reply_routes=["chat", "voice", "caption"], proactive={"routes": ["voice"]},
                     services=ChatServices(publish=bus.publish, outputs=reply_outputs(show)))
    try:
        loop.poll_once()
        sandbox.post_comment(text="hello show", username="zoe", user_db_id=me)
        assert loop.poll_once() == 1
        reply = agent_lines(client, me)[-1]
        assert "zoe" in reply and captions == [reply]
        wait_for(lambda: any(e.kind == "utterance_finished" for e in events), 10, "the reply spoken")
        now[0] += 11  # a quiet chat: a proactive line, spoken only
        loop.keep_alive()
        wait_for(lambda: sum(e.kind == "utterance_finished" for e in events) == 2, 10, "the proactive line spoken")
    finally:
        show.close()
    started = [e.data for e in events if e.kind == "utterance_started"]
    assert next((u["text"], u["priority"]) for u in started) == (reply, "reply")
    assert [u["priority"] for u in started] == ["reply", "proactive"]
    assert sum(e.kind == "utterance_finished" for e in events) == 2  # each once on the bus
    assert reply in heard  # the show heard the voice's sentence_started on the bus: its caption
    lines = [(line.user, line.text, line.own) for line in scene.snapshot().chat]
    assert ("zoe", "hello show", False) in lines  # the bus's chat event, with the moderated name
    assert sum(text == reply for _, text, _ in lines) == 1  # the reply once on screen (the bus's reply event)
    assert not any(text == started[1]["text"] for _, text, _ in lines)  # spoken only: not a chat line
