"""The skill's duties around going live (issue 20.3), in-process against the sandbox with a real
encoder on Xvfb and the sandbox's nginx-rtmp ingest: the opening line's result (retried without
a second copy, its failure told), the token saved on the first stream, the heartbeat while
standing by (read, decide, act, tell)."""

from __future__ import annotations

import json
import time

from appliance.live.lifecycle import State
from tests.support.live import Running, make_agent, settings_for
from tests.support.sandbox import entry_name
from tests.support.tree import wait_until as wait_for

OPENING = "I'm live. What should we explore today?"


def notes(settings, event: str) -> list[dict]:
    path = settings.notify_file()
    lines = path.read_text().splitlines() if path.exists() else []
    return [n for n in map(json.loads, lines) if n["event"] == event]


def sends(sb) -> list[dict]:
    return [r for r in sb.requests() if entry_name(r) == "agent/stream/chat/send"]


def texts(agent) -> list[str]:
    return [c.text for c in agent["client"].comments(agent["user"])]


def small(sb, tmp_path, agent, display, **overrides):
    return settings_for(sb, tmp_path, agent, display, stream={"width": 320, "height": 240}, **overrides)


def test_a_rate_capped_opening_line_goes_out_once_on_the_retry(rtmp_sandbox, tmp_path, xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "OpenerAgent")
    settings = small(sb, tmp_path, agent, xvfb_display, notify={"opening_retry_s": 0.3})
    sb.set_fault(kind="ratelimit", paths="agent/stream/chat/send", count=1, retry_after=1)
    with Running(settings) as run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        time.sleep(3)  # chat polls: a resend of the first attempt would show by now
        assert texts(agent).count(OPENING) == 1
    assert [r["status"] for r in sends(sb)] == [429, 200]
    assert notes(settings, "opening_failed") == []
    assert any("opening line not sent" in line and "429" in line for line in run.lines)


def test_an_opening_line_the_platform_keeps_refusing_is_told_to_the_builder(rtmp_sandbox, tmp_path, xvfb_display):
    """Before: a refused first message was lost silently (chat.send's result ignored)."""
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "RefusedOpener")
    settings = small(sb, tmp_path, agent, xvfb_display, notify={"opening_retry_s": 0.2})
    sb.set_fault(status=503, paths="agent/stream/chat/send", count=3)
    with Running(settings) as run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")  # live anyway: chat is open
        wait_for(lambda: notes(settings, "opening_failed"), 5, "the builder told")
        time.sleep(3)
        assert OPENING not in texts(agent)  # given up: never sent late as a surprise
    (note,) = notes(settings, "opening_failed")
    assert "503" in note["text"] and "appliance chat" in note["text"]
    assert [r["status"] for r in sends(sb)] == [503, 503, 503]  # three tries, each the same journal row
    assert "opening line" in run.lc.metrics.last_error


def test_the_token_address_and_ticker_are_saved_on_the_first_stream(rtmp_sandbox, tmp_path, xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "TokenAgent")
    assert json.loads(agent["cred_path"].read_text())["token_address"] == ""
    settings = small(sb, tmp_path, agent, xvfb_display)
    with Running(settings) as run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        address = agent["client"].stream_status().token_address
    saved = json.loads(agent["cred_path"].read_text())
    assert address and saved["token_address"] == address and saved["token_ticker"] == "CLI"
    assert saved["access_token"] == agent["token"]  # nothing else touched
    assert any(f"token CLI at {address} saved" in line for line in run.lines)
    mtime = agent["cred_path"].stat().st_mtime_ns
    with Running(settings) as again:  # the second stream: already saved, not written again
        wait_for(lambda: again.lc.metrics.state is State.LIVE, 40, "LIVE again")
    assert agent["cred_path"].stat().st_mtime_ns == mtime


def test_the_heartbeat_while_standing_by_answers_chat_then_goes_live(rtmp_sandbox, tmp_path, xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "BeatAgent")
    settings = small(sb, tmp_path, agent, xvfb_display, control={"autostart": False},
                     live={"heartbeat": {"every_s": 2, "stream_comments": 3, "go_live": True}})
    with Running(settings, heartbeat=True) as run:
        wait_for(lambda: run.lc.metrics.hold is not None and run.lc.metrics.hold.reason == "standby", 20, "standby")
        sb.post_comment(text="are you there?", username="nightowl", user_db_id=agent["user"])
        wait_for(lambda: notes(settings, "heartbeat"), 10, "a heartbeat")
        first = notes(settings, "heartbeat")[0]
        assert first["decision"] == "chat" and "nightowl: are you there?" in first["text"]
        wait_for(lambda: any("nightowl: I'm not live right now" in t for t in texts(agent)), 5, "the offline reply")
        assert run.lc.metrics.state is State.WAITING  # one comment: not worth a stream
        for n in range(3):
            sb.post_comment(text=f"stream please {n}", username=f"fan{n}", user_db_id=agent["user"])
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "live by the heartbeat's decision")
    decisions = [n["decision"] for n in notes(settings, "heartbeat")]
    assert decisions[-1] == "stream" and "chat" in decisions
    assert "Going live now" in notes(settings, "heartbeat")[-1]["text"]
    offline = [t for t in texts(agent) if "not live right now" in t]
    assert len(offline) == 1  # answered once, not at every heartbeat
