"""The chat loop against the sandbox: new messages only, never our own, nothing twice."""

from __future__ import annotations

import threading

from appliance.chat import ChatLoop, OfflineResponder
from appliance.config import ChatConfig
from appliance.state import StateStore
from test_client import config, register

from appliance.retake.client import RetakeClient


def make_loop(sandbox, tmp_path, client, me, name, clock=None):
    kw = {"clock": clock} if clock else {}
    return ChatLoop(client, ChatConfig(quiet_after_s=10), user_db_id=me, agent_name=name,
                    state=StateStore(tmp_path), responder=OfflineResponder(), stop_event=threading.Event(), **kw)


def agent_lines(sandbox, client, me):
    return [c.text for c in client.comments(me, limit=100) if c.username not in ("alice", "bob", "mallory")]


def test_answers_new_messages_once_even_across_a_restart(sandbox, tmp_path):
    _, client = register(RetakeClient(config(sandbox)), "ChatAgent")
    me = client.stream_status().userDbId
    sandbox.post_comment(text="said before we started", username="alice", user_db_id=me)
    loop = make_loop(sandbox, tmp_path, client, me, "ChatAgent")
    assert loop.poll_once() == 0  # history is baseline, not a question
    sandbox.post_comment(text="hello there", username="alice", user_db_id=me)
    sandbox.post_comment(text="!uptime", username="bob", user_db_id=me)
    assert loop.poll_once() == 2
    replies = agent_lines(sandbox, client, me)
    assert any("Welcome, alice" in r for r in replies) and any(r.startswith("bob: live for") for r in replies)
    assert loop.poll_once() == 0  # our own replies are not viewer messages

    # a new controller process on the same state folder: nothing is answered twice
    sandbox.post_comment(text="!help", username="bob", user_db_id=me)
    restarted = make_loop(sandbox, tmp_path, client, me, "ChatAgent")
    assert restarted.poll_once() == 1
    assert restarted.poll_once() == 0
    replies = agent_lines(sandbox, client, me)
    assert sum("Welcome, alice" in r for r in replies) == 1
    assert sum("commands are !help" in r for r in replies) == 1


def test_hostile_text_is_sanitized_and_silence_is_filled(sandbox, tmp_path):
    _, client = register(RetakeClient(config(sandbox)), "ChatAgent2")
    me = client.stream_status().userDbId
    now = [1000.0]
    loop = make_loop(sandbox, tmp_path, client, me, "ChatAgent2", clock=lambda: now[0])
    loop.poll_once()
    seen = []
    loop.on_message = seen.append
    sandbox.post_comment(text="\x1b]0;owned\x07\x1b[2Jhi" + "x" * 1900, username="mallory\x1b[31m", user_db_id=me)
    loop.poll_once()
    assert seen and "\x1b" not in seen[0].text and "\x1b" not in seen[0].username
    assert len(seen[0].text) <= 500
    now[0] += 11
    loop.keep_alive()
    assert any("Quiet chat" in line for line in agent_lines(sandbox, client, me))
