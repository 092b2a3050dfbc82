"""`appliance live`'s lifecycle in-process, with a real encoder on a real Xvfb display,
against the sandbox and its real nginx-rtmp ingest."""

from __future__ import annotations

import os
import signal
import time

from appliance.live.lifecycle import State
from tests.support.live import Running, make_agent, paths, settings_for
from tests.support.sandbox import entry_name
from tests.support.tree import wait_until as wait_for


def test_go_live_order_chat_and_stop(rtmp_sandbox, tmp_path, xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "LifeAgent")
    start = len(sb.requests())
    settings = settings_for(sb, tmp_path, agent, xvfb_display)
    with Running(settings) as run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        sb.post_comment(text="hello agent", username="alice", user_db_id=agent["user"])
        t0 = time.monotonic()
        wait_for(lambda: any("Welcome, alice" in c.text for c in agent["client"].comments(agent["user"])),
                 8, "a reply to alice")
        reply_s = time.monotonic() - t0
    assert run.rc == 0 and run.lc.metrics.state is State.STOPPED
    log = sb.requests()[start:]
    names = [p for m, p in paths(log) if not p.startswith(("agent/stream/comments", "agent/verification"))]
    key_order = [n for n in names if n in ("agent/rtmp", "agent/stream/start", "RTMP publish",
                                           "agent/stream/status", "agent/update-thumbnail",
                                           "agent/stream/chat/send", "agent/stream/stop")]
    first = {n: key_order.index(n) for n in reversed(key_order)}
    assert first["agent/rtmp"] < first["agent/stream/start"] < first["RTMP publish"] \
        < first["agent/update-thumbnail"] < first["agent/stream/chat/send"]
    statuses_before_thumb = [i for i, n in enumerate(key_order)
                             if n == "agent/stream/status" and i < first["agent/update-thumbnail"]]
    assert statuses_before_thumb and max(statuses_before_thumb) > first["RTMP publish"]
    thumb = next(r for r in log if r["path"].endswith("update-thumbnail"))
    assert thumb["status"] == 200 and thumb.get("image", {}).get("format") in ("png", "PNG")
    assert key_order[-1] == "agent/stream/stop"
    assert reply_s < 6
    assert run.encoder.health().state in ("stopped", "exited")


def test_encoder_killed_comes_back_live_with_a_new_key(rtmp_sandbox, tmp_path, xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "CrashAgent")
    settings = settings_for(sb, tmp_path, agent, xvfb_display)
    with Running(settings) as run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        mark = len(sb.requests())
        os.kill(run.encoder.pid, signal.SIGKILL)
        t0 = time.monotonic()
        wait_for(lambda: run.lc.metrics.restarts >= 1, 5, "a recovery")
        wait_for(lambda: run.lc.metrics.state is State.LIVE and agent["client"].stream_status().is_live, 15,
                 "live again")
        back_s = time.monotonic() - t0
        after = paths(sb.requests(), mark)
    assert back_s <= 10, f"back live after {back_s:.1f}s"
    assert ("POST", "agent/rtmp") in after and ("POST", "agent/stream/start") in after
    # the sandbox refuses superseded keys, so an accepted publish after a new agent/rtmp is a fresh key
    log = sb.requests()[mark:]
    rtmp_at = next(i for i, r in enumerate(log) if entry_name(r) == "agent/rtmp")
    assert any(entry_name(r) == "RTMP publish" and r["status"] == 200 for r in log[rtmp_at:])


def test_server_errors_for_a_while_are_ridden_out(rtmp_sandbox, tmp_path, xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "FaultAgent")
    settings = settings_for(sb, tmp_path, agent, xvfb_display)
    with Running(settings) as run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        sb.set_fault(status=500, seconds=4)
        time.sleep(5)
        sb.post_comment(text="still there?", username="bob", user_db_id=agent["user"])
        wait_for(lambda: any("Welcome, bob" in c.text for c in agent["client"].comments(agent["user"])),
                 10, "a reply after the fault")
        assert run.lc.metrics.state is State.LIVE
    assert run.rc == 0


def test_unauthorized_ends_with_a_clear_message(sandbox, tmp_path):
    agent = make_agent(sandbox, tmp_path, "BadTokenAgent")
    settings = settings_for(sandbox, tmp_path, agent, ":1")
    os.environ["RETAKE_ACCESS_TOKEN"] = "rtk_not_a_valid_token"
    try:
        run = Running(settings)
        rc = run.lc.run()
    finally:
        del os.environ["RETAKE_ACCESS_TOKEN"]
    assert rc == 1 and run.lc.metrics.state is State.FAILED
    assert any("refused the access token" in line and "RETAKE_ACCESS_TOKEN" in line for line in run.lines)
    assert "rtk_not_a_valid_token" not in "\n".join(run.lines)


def test_unverified_blocks_and_notifies(sandbox, tmp_path):
    agent = make_agent(sandbox, tmp_path, "UnverifiedAgent", verified=False)
    settings = settings_for(sandbox, tmp_path, agent, ":1", recovery={"verification_recheck_s": 5})
    with Running(settings) as run:
        wait_for(lambda: any("post this exact message" in line for line in run.lines), 10, "tweet instructions")
        assert run.lc.metrics.state is State.VERIFICATION
        notes = settings.notify_file().read_text()
        assert "verification_required" in notes and "Code" in notes
    assert run.rc == 0


def test_token_from_the_environment_only(rtmp_sandbox, tmp_path, xvfb_display, monkeypatch):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "EnvOnlyAgent")
    agent["cred_path"].unlink()
    secret = tmp_path / "secret-token"
    secret.write_text(agent["token"])
    monkeypatch.setenv("RETAKE_ACCESS_TOKEN_FILE", str(secret))
    settings = settings_for(sb, tmp_path, agent, xvfb_display)
    with Running(settings) as run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
    assert run.rc == 0
    saved = agent["cred_path"].read_text()
    assert agent["token"] not in saved and agent["user"] in saved
