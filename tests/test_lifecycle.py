"""`appliance live`'s lifecycle in-process, with a real encoder on a real Xvfb display,
against the sandbox and its real nginx-rtmp ingest."""

from __future__ import annotations

import os
import signal
import threading
import time


from appliance.config import parse_config
from appliance.credentials import Credentials, Secret, save_credentials
from appliance.media.display import capture_png
from appliance.media.encoder import Encoder
from appliance.live.lifecycle import Lifecycle, State
from appliance.notify import Notifier
from appliance.retake.client import RetakeClient
from appliance.state import StateStore
from conftest import entry_name
from test_client import WALLET, config, register
from tree_fixtures import wait_until as wait_for


def make_agent(sandbox, tmp_path, name: str, *, verified: bool = True) -> dict:
    result, client = register(RetakeClient(config(sandbox)), name)
    if verified:
        client.prepare_verify()
        client.verify("https://x.com/tester/status/1234567890")
    creds = Credentials(access_token=Secret(result.access_token), agent_name=name, agent_id=result.agent_id,
                        userDbId=result.userDbId, wallet_address=WALLET, ticker="CLI")
    cred_path = tmp_path / "creds" / "credentials.json"
    save_credentials(cred_path, creds)
    return {"name": name, "token": result.access_token, "user": result.userDbId, "cred_path": cred_path,
            "client": client}


def settings_for(sandbox, tmp_path, agent, display, **overrides):
    data = {
        "agent": {"name": agent["name"],
                  "description": "d", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "CLI"},
        "retake": {"base_url": sandbox.base_url, "sandbox": True, "timeout_s": 5, "backoff_s": 0.05,
                   "backoff_max_s": 0.5, "retries": 3},
        "paths": {"credentials": str(agent["cred_path"]), "state_dir": str(tmp_path / "state")},
        # min_speed 0.5: no speed restart the test did not ask for on a busy machine (test_media has the rule)
        "stream": {"display": display, "audio_source": "silent", "status_poll_s": 1, "min_speed": 0.5},
        "chat": {"poll_s": 1, "quiet_poll_s": 1},
        "recovery": {"backoff_s": 0.2, "backoff_max_s": 1},
    }
    for key, value in overrides.items():
        data.setdefault(key, {}).update(value)
    return parse_config(data)


class Running:
    """A lifecycle on a thread, with its progress lines collected."""

    def __init__(self, settings, *, encoder=None, client=None, **lifecycle_kw):
        self.settings = settings
        self.lines: list[str] = []
        self.encoder = encoder or Encoder(settings.stream)
        self.stop = threading.Event()
        self.lc = Lifecycle(settings, client=client or RetakeClient(settings.retake), encoder=self.encoder,
                            capture=lambda: capture_png(settings.stream.display),
                            notifier=Notifier(settings), state=StateStore(settings.state_dir),
                            stop_event=self.stop, progress=self.lines.append, **lifecycle_kw)
        self.rc: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.rc = self.lc.run()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        self.encoder.stop()


def paths(log, after=0):
    return [(r["method"], entry_name(r)) for r in log[after:]]


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
    statuses_before_thumb = [i for i, n in enumerate(key_order) if n == "agent/stream/status" and i < first["agent/update-thumbnail"]]
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
        wait_for(lambda: run.lc.metrics.state is State.LIVE and agent["client"].stream_status().is_live, 15, "live again")
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
        wait_for(lambda: any("post this exact message" in l for l in run.lines), 10, "tweet instructions")
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
