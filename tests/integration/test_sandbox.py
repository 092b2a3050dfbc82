"""The sandbox (local retake.tv): real HTTP, real Socket.IO, real nginx-rtmp and FFmpeg."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import socketio

from appliance.core.images import ImageError, inspect_image
from appliance.sandbox import Sandbox
from tests.support.sandbox import (
    WALLET,
    SandboxAgent,
    make_png,
    publish_test_stream,
    register_agent,
    requires_ffmpeg,
)

REPO = Path(__file__).resolve().parents[2]


def register_body(**over: str) -> dict[str, str]:
    body = {"agent_name": "Alpha", "agent_description": "d", "image_url": "https://example.com/a.png",
            "wallet_address": WALLET, "ticker": "ALPHA"}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def fake_publish(sb: Sandbox, key: str, done: bool = False) -> int:
    """Play nginx's on_publish / on_publish_done callback (for tests without an ingest)."""
    what = "on_publish_done" if done else "on_publish"
    return requests.post(f"{sb.origin}/_sandbox/rtmp/{what}", data={"name": key, "app": "live"}, timeout=5).status_code


# ----- registration, auth, verification ----------------------------------------------------------
def test_register_returns_documented_fields_and_rejects_bad_input(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/agent/register"
    resp = requests.post(url, json=register_body(), timeout=5)
    assert resp.status_code == 200
    data = resp.json()
    assert data["access_token"].startswith("rtk_") and len(data["access_token"]) > 20
    assert data["agent_id"] and data["userDbId"] and data["wallet_address"] == WALLET
    assert data["token_address"] == "" and data["token_ticker"] == ""
    second = requests.post(url, json=register_body(agent_name="Beta"), timeout=5).json()
    assert second["access_token"] != data["access_token"]

    for body, needle in [(register_body(agent_name="alpha"), "taken"),
                         (register_body(ticker="ELEVENCHARS"), "ticker"),
                         (register_body(wallet_address="0OIl" * 10), "wallet"),
                         (register_body(wallet_address="1111"), "wallet"),
                         (register_body(ticker=None), "ticker"),
                         (register_body(agent_name=""), "agent_name")]:
        bad = requests.post(url, json=body, timeout=5)
        assert bad.status_code == 400, body
        assert needle in bad.json()["error"]
    assert requests.post(url, data="not json", timeout=5).status_code == 400


def test_agent_endpoints_need_a_valid_bearer_token(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    for headers in ({}, {"Authorization": "Bearer rtk_nope"}, {"Authorization": sandbox_agent.access_token}):
        resp = requests.get(f"{sandbox.base_url}/agent/stream/status", headers=headers, timeout=5)
        assert resp.status_code == 401
        assert "error" in resp.json()
    log = sandbox.requests()
    assert [e["auth"] for e in log[-3:]] == [False, True, True]
    assert sandbox_agent.access_token not in json.dumps(log)


def test_verification_flow(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    a = sandbox_agent
    assert a.get("agent/verification-status").json() == {"verified": False}
    early = a.post("agent/verify", json={"tweet_url": "https://x.com/op/status/1"})
    assert early.status_code == 400 and early.json()["error"] == "No verification message yet"
    msg = a.post("agent/prepare-verify").json()["verification_message"]
    assert msg.startswith("Claiming my Livestreaming Agent on @retakedottv. Code: ")
    for bad in ("https://x.com/op", "https://evil.com/op/status/1", "https://x.com.evil.com/op/status/1",
                "https://x.com/op/status/abc", "<tweet url>", ""):
        resp = a.post("agent/verify", json={"tweet_url": bad})
        assert resp.status_code == 400 and resp.json()["error"] == "Invalid tweet URL", bad
    sandbox.settings(verify_rejects=True)
    resp = a.post("agent/verify", json={"tweet_url": "https://twitter.com/op/status/1234567890"})
    assert resp.status_code == 400 and resp.json()["error"] == "Tweet doesn't contain the code"
    sandbox.settings(verify_rejects=False)
    assert a.post("agent/verify", json={"tweet_url": "https://x.com/op/status/1234567890"}).json() == {"verified": True}
    assert a.get("agent/verification-status").json() == {"verified": True}


# ----- stream lifecycle without nginx (callbacks played by the test) ---------------------------------
def test_rtmp_keys_are_fresh_and_superseded_keys_are_refused(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    first = sandbox_agent.post("agent/rtmp").json()
    second = sandbox_agent.post("agent/rtmp").json()
    assert first["key"].startswith("sk_") and first["key"] != second["key"]
    assert second["url"].startswith("rtmp://127.0.0.1:") and second["url"].endswith("/live")
    assert fake_publish(sandbox, first["key"]) == 403
    assert fake_publish(sandbox, "sk_never_issued") == 403
    assert fake_publish(sandbox, second["key"]) == 200
    events = [(e["path"], e["status"], e["key"]) for e in sandbox.requests() if e["method"] == "RTMP"]
    assert events == [("publish", 403, "superseded"), ("publish", 403, "unknown"), ("publish", 200, "current")]


def test_is_live_needs_publish_with_current_key_and_session(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    a = sandbox_agent
    key = a.post("agent/rtmp").json()["key"]
    fake_publish(sandbox, key)
    assert a.get("agent/stream/status").json()["is_live"] is False  # no session yet
    start = a.post("agent/stream/start").json()
    assert start["success"] is True and start["token"]["tokenAddress"] == ""  # unverified: no token
    status = a.get("agent/stream/status").json()
    assert status["is_live"] is True and status["userDbId"] == a.user_id
    assert set(status) == {"is_live", "viewers", "uptime_seconds", "token_address", "userDbId"}
    a.post("agent/rtmp")  # rotating the key: the running publish no longer counts
    assert a.get("agent/stream/status").json()["is_live"] is False
    stopped = a.post("agent/stream/stop").json()
    assert stopped["status"] == "stopped" and isinstance(stopped["duration_seconds"], int)
    again = a.post("agent/stream/stop")
    assert again.status_code == 409 and again.json() == {"error": "No active session"}


def test_stop_without_session_is_409(sandbox_agent: SandboxAgent) -> None:
    resp = sandbox_agent.post("agent/stream/stop")
    assert resp.status_code == 409 and resp.json()["error"] == "No active session"


def test_token_address_assigned_on_first_verified_stream_and_persists(sandbox: Sandbox) -> None:
    a = register_agent(sandbox, verified=True, ticker="TOK")
    token = a.post("agent/stream/start").json()["token"]
    assert token["tokenAddress"] and token["ticker"] == "TOK" and token["name"] == a.name
    a.post("agent/stream/stop")
    assert a.post("agent/stream/start").json()["token"]["tokenAddress"] == token["tokenAddress"]
    assert a.get("agent/stream/status").json()["token_address"] == token["tokenAddress"]
    stats = requests.get(f"{sandbox.base_url}/tokens/{token['tokenAddress']}/stats", timeout=5).json()
    assert {"current_price", "market_cap", "all_time_high", "growth", "volume", "earnings"} <= set(stats)


# ----- thumbnails ------------------------------------------------------------------------------------
def test_thumbnail_accepts_png_and_rejects_garbage(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    a, png = sandbox_agent, make_png(16, 9)
    assert a.post("agent/update-thumbnail", files={"image": ("t.png", png, "image/png")}).status_code == 409
    a.post("agent/stream/start")
    ok = a.post("agent/update-thumbnail", files={"image": ("t.png", png, "image/png")})
    assert ok.status_code == 200, ok.text
    assert ok.json()["message"] and requests.get(ok.json()["thumbnail_url"], timeout=5).content == png
    corrupt = bytearray(png)
    corrupt[-20] ^= 0xFF
    for bad in (b"hello, not an image", png[:8] + b"\x00" * 100, png[:-12], bytes(corrupt),
                b"\xff\xd8\xff\xe0" + b"\x00" * 50):
        resp = a.post("agent/update-thumbnail", files={"image": ("t.png", bad, "image/png")})
        assert resp.status_code == 400 and "error" in resp.json()
    assert a.post("agent/update-thumbnail", files={"file": ("t.png", png, "image/png")}).status_code == 400
    logged = [e for e in sandbox.requests() if e["path"].endswith("update-thumbnail") and e["status"] == 200]
    assert logged[0]["image"] == {"format": "png", "width": 16, "height": 9, "bytes": len(png)}


@requires_ffmpeg
def test_image_checker_accepts_a_real_jpeg(tmp_path: Path) -> None:
    out = tmp_path / "t.jpg"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48",
                    "-frames:v", "1", str(out)], check=True, timeout=20)
    info = inspect_image(out.read_bytes())
    assert (info.format, info.width, info.height) == ("jpeg", 64, 48)
    with pytest.raises(ImageError):
        inspect_image(out.read_bytes()[:-100])


# ----- chat ------------------------------------------------------------------------------------------
def test_comments_documented_shape_newest_first_to_the_second_with_paging(sandbox: Sandbox,
                                                                            sandbox_agent: SandboxAgent) -> None:
    """The reference gives neither the page's order nor sub-second times: the sandbox serves the
    order that tells a client nothing for free (newest first; oldest first on request) and times
    to the second, as the reference's example."""
    a = sandbox_agent
    for i in range(3):
        sandbox.post_comment(f"hello {i}", username=f"viewer{i}")
    sent = a.post("agent/stream/chat/send", json={"message": "hi chat", "destination_user_id": a.user_id})
    assert sent.status_code == 200
    comments = a.get("agent/stream/comments", params={"userDbId": a.user_id}).json()["comments"]
    assert [c["text"] for c in comments] == ["hi chat", "hello 2", "hello 1", "hello 0"]
    first = comments[-1]
    assert set(first) == {"_id", "streamId", "text", "timestamp", "author"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["timestamp"])  # 2025-02-01T14:20:00Z
    assert set(first["author"]) == {"walletAddress", "fusername", "fid", "favatar"}
    assert first["streamId"] == a.user_id and first["author"]["fusername"] == "viewer0"
    assert comments[0]["author"]["fusername"] == a.name
    page = a.get("agent/stream/comments", params={"userDbId": a.user_id, "limit": 2}).json()["comments"]
    assert [c["text"] for c in page] == ["hi chat", "hello 2"]
    older = a.get("agent/stream/comments",
                  params={"userDbId": a.user_id, "limit": 2, "beforeId": page[-1]["_id"]}).json()["comments"]
    assert [c["text"] for c in older] == ["hello 1", "hello 0"]
    sandbox.settings(comments_order="oldest_first")
    page = a.get("agent/stream/comments", params={"userDbId": a.user_id, "limit": 2}).json()["comments"]
    assert [c["text"] for c in page] == ["hello 2", "hi chat"]
    assert requests.post(f"{sandbox.origin}/_sandbox/settings", json={"comments_order": "sideways"},
                         timeout=5).status_code == 400
    assert a.get("agent/stream/comments", params={"userDbId": a.user_id, "limit": 500}).status_code == 200
    assert a.get("agent/stream/comments", params={"userDbId": "nobody"}).status_code == 404
    assert a.get("agent/stream/comments").status_code == 400
    bad = a.post("agent/stream/chat/send", json={"message": "x", "destination_user_id": "nobody"})
    assert bad.status_code == 404
    too_long = {"message": "x" * 5000, "destination_user_id": a.user_id}
    assert a.post("agent/stream/chat/send", json=too_long).status_code == 400


def test_comments_observed_shape_is_a_bare_array_newest_first(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    sandbox.settings(comments_shape="observed")
    for i in range(3):
        sandbox.post_comment(f"c{i}", username="lurker")
    items = sandbox_agent.get("agent/stream/comments", params={"userDbId": sandbox_agent.user_id}).json()
    assert isinstance(items, list) and [i["text"] for i in items] == ["c2", "c1", "c0"]
    assert set(items[0]) == {"chat_event_id", "sender_user_id", "sender_username", "sender_display_name",
                             "sender_pfp", "sender_wallet_address", "session_id", "text", "type", "timestamp"}
    assert items[0]["type"] == "message" and items[0]["timestamp"].isdigit()


def test_control_surface_comment_injection_over_http(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    resp = requests.post(f"{sandbox.origin}/_sandbox/comments", json={"username": "eve", "text": "\x1b[31mred"},
                         timeout=5)
    assert resp.status_code == 201
    chats = requests.get(f"{sandbox.base_url}/chat/", params={"streamer_id": sandbox_agent.user_id}, timeout=5).json()
    assert chats["chats"][0]["text"] == "\x1b[31mred" and chats["chats"][0]["sender_username"] == "eve"
    too_long = requests.post(f"{sandbox.origin}/_sandbox/comments", json={"username": "e", "text": "x" * 9000},
                             timeout=5)
    assert too_long.status_code == 400


def socket_client(sb: Sandbox, *events: str) -> tuple[socketio.Client, dict[str, list[dict]], threading.Event]:
    """A connected python-socketio client recording ``events`` (``arrived`` is set on each)."""
    client = socketio.Client(reconnection=False)
    got: dict[str, list[dict]] = {e: [] for e in events}
    arrived = threading.Event()
    for event in events:
        client.on(event, lambda data=None, e=event: (got[e].append(data), arrived.set()))
    client.connect(sb.origin, socketio_path="socket.io", transports=["websocket"], wait_timeout=5)
    return client, got, arrived


def test_join_room_has_no_acknowledgement_unless_the_switch_asks(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    client, got, arrived = socket_client(sandbox, "message", "joinedRoom")
    try:
        with pytest.raises(socketio.exceptions.TimeoutError):
            client.call("joinRoom", {"roomId": sandbox_agent.user_id}, timeout=1.5)  # as documented: no answer
        with pytest.raises(socketio.exceptions.TimeoutError):
            client.call("joinRoom", {}, timeout=0.5)  # nor for a bad one
        sandbox.post_comment("ping over socket", username="sockfan")
        assert arrived.wait(5)  # ...yet the room was joined: its traffic shows it
        assert got["message"][0]["text"] == "ping over socket" and not got["joinedRoom"]
        sandbox.settings(socket_ack=True, joined_room_event=True)
        assert client.call("joinRoom", {"roomId": "live_x"}, timeout=5) == {"ok": True, "roomId": "live_x"}
        assert sandbox.wait_for(lambda: got["joinedRoom"] == [{"roomId": "live_x"}], 5)
        assert client.call("leaveRoom", {"roomId": "live_x"}, timeout=5)["ok"] is True
    finally:
        client.disconnect()
    events = [(e["event"], e["room"]) for e in sandbox.sockets()["events"]]
    assert events[:2] == [("joinRoom", sandbox_agent.user_id), ("joinRoom", None)]
    assert ("leaveRoom", "live_x") in events


def test_socket_payloads_carry_the_documented_fields(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    a = sandbox_agent
    client, got, _ = socket_client(sandbox, "message", "tip_received")
    try:
        for room in (a.user_id, f"live_{a.user_id}"):
            client.emit("joinRoom", {"roomId": room})
        assert sandbox.wait_for(lambda: len(sandbox.sockets()["clients"][0]["rooms"]) == 2, 5)
        sandbox.post_comment("documented", username="plain")
        sandbox.event("tip", username="tipper", amount=0.2)
        assert sandbox.wait_for(lambda: len(got["message"]) == 2 and got["tip_received"], 5)
        message = got["message"][0]
        assert set(message) == {"type", "session_id", "streamer_id", "sender_user_id", "sender_username", "text",
                                "timestamp"}
        assert message["timestamp"].isdigit() and message["type"] == "message"
        assert got["message"][1]["tip_data"]["amount"] == 0.2 and got["message"][1]["type"] == "tip"
        assert "chat_event_id" not in got["tip_received"][0]
        sandbox.settings(socket_extras=True)  # what other clients observed
        sandbox.post_comment("observed", username="plain")
        assert sandbox.wait_for(lambda: len(got["message"]) == 3, 5)
        assert {"chat_event_id", "sender_wallet_address"} <= set(got["message"][2])
    finally:
        client.disconnect()


def test_every_documented_room_and_event(sandbox: Sandbox) -> None:
    a = register_agent(sandbox, "Rooms", verified=True)
    fake_publish(sandbox, a.post("agent/rtmp").json()["key"])
    token = a.post("agent/stream/start").json()["token"]["tokenAddress"]
    status = a.get("agent/stream/status").json()  # no session id here: the public API has it
    session_id = requests.get(f"{sandbox.base_url}/sessions/active/{a.user_id}/", timeout=5).json()["session_id"]
    assert status["is_live"]
    kinds = ("message", "tip_received", "user_followed", "session_started", "pinned", "newtrade", "rawtrade")
    rooms = {"chat": a.user_id, "live": f"live_{a.user_id}", "session": f"{a.user_id}/{session_id}",
             "trades": "trades", "token": f"trades_{token}"}
    clients = {name: socket_client(sandbox, *kinds) for name in rooms}
    try:
        for name, (client, _, _) in clients.items():
            client.emit("joinRoom", {"roomId": rooms[name]})
        assert sandbox.wait_for(lambda: sum(len(c["rooms"]) for c in sandbox.sockets()["clients"]) == 5, 5)
        posted = sandbox.post_comment("pin me", username="fan")
        sandbox.event("follow", username="fan")
        sandbox.event("tip", username="fan", amount=0.5)
        sandbox.event("trade", username="fan", amount=12.5)
        sandbox.pin(posted["chat_event_id"])
        fake_publish(sandbox, a.post("agent/rtmp").json()["key"])  # a new key: live again, a new session_started
        time.sleep(0.5)
    finally:
        for client, _, _ in clients.values():
            client.disconnect()
    heard = {name: {k for k, v in got.items() if v} for name, (_, got, _) in clients.items()}
    assert heard == {"chat": {"message"}, "live": {"tip_received", "user_followed", "session_started"},
                     "session": {"pinned"},
                     "trades": {"newtrade", "rawtrade"}, "token": {"newtrade"}}
    newtrade = clients["token"][1]["newtrade"][0]
    assert newtrade == {"address": token, "action": "buy", "usdAmount": 12.5, "tokenTicker": "TEST"}
    assert clients["session"][1]["pinned"][0]["message"]["text"] == "pin me"
    assert requests.post(f"{sandbox.origin}/_sandbox/pin", json={"message_id": "nope"}, timeout=5).status_code == 404


def test_socketio_session_started_and_socket_send_refused(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    client, got, started = socket_client(sandbox, "session_started")
    try:
        client.emit("joinRoom", {"roomId": f"live_{sandbox_agent.user_id}"})
        assert sandbox.wait_for(lambda: sandbox.sockets()["clients"][0]["rooms"], 5)
        fake_publish(sandbox, sandbox_agent.post("agent/rtmp").json()["key"])
        sandbox_agent.post("agent/stream/start")
        assert started.wait(5) and got["session_started"][0]["session_id"]
        assert client.call("message", {"type": "message", "text": "hi"}, timeout=5)["ok"] is False
    finally:
        client.disconnect()


def test_a_platform_warning_is_a_chat_event_of_type_warning_in_every_shape(sandbox: Sandbox,
                                                                          sandbox_agent: SandboxAgent) -> None:
    a = sandbox_agent
    resp = requests.post(f"{sandbox.origin}/_sandbox/warning", json={"text": "Low effort: shutdown in 10 min"},
                         timeout=5)
    assert resp.status_code == 201 and resp.json()["type"] == "warning"
    params = {"userDbId": a.user_id}
    item = a.get("agent/stream/comments", params=params).json()["comments"][0]
    assert item["type"] == "warning" and item["text"] == "Low effort: shutdown in 10 min"
    assert item["author"] == {"walletAddress": "", "fid": 0, "favatar": "", "fusername": "retake.tv"}
    sandbox.settings(comments_shape="observed")
    item = a.get("agent/stream/comments", params=params).json()[0]
    assert item["type"] == "warning" and not item["sender_user_id"]
    assert requests.post(f"{sandbox.origin}/_sandbox/warning", json={"text": " "}, timeout=5).status_code == 400


def test_bounds_and_secret_hygiene(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    huge = requests.post(f"{sandbox.base_url}/agent/register", data=b"x" * (9 * 1024 * 1024),
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert huge.status_code == 413 and "error" in huge.json()
    sandbox_agent.post("agent/stream/chat/send", json={"message": "hi", "destination_user_id": sandbox_agent.user_id,
                                                       "access_token": sandbox_agent.access_token})
    entry = sandbox.requests()[-1]
    assert entry["body_access_token"] is True and sandbox_agent.access_token not in json.dumps(sandbox.requests())
    requests.get(f"{sandbox.base_url}/agent/stream/status", params={"access_token": "rtk_leak"}, timeout=5)
    assert sandbox.requests()[-1]["query"] == {"access_token": "<redacted>"}
    assert requests.get(f"{sandbox.base_url}/no/such/thing", timeout=5).json() == {"error": "Not Found"}


# ----- faults, redirect, echo ------------------------------------------------------------------------
def test_faults_answer_500_then_recover(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    sandbox.set_fault(500, count=2)
    codes = [sandbox_agent.get("agent/stream/status").status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    resp = requests.post(f"{sandbox.origin}/_sandbox/faults",
                         json={"status": 503, "seconds": 3, "paths": "agent/stream/comments"}, timeout=5)
    assert resp.status_code == 200 and resp.json()["faults"][0]["status"] == 503
    params = {"userDbId": sandbox_agent.user_id}
    assert sandbox_agent.get("agent/stream/comments", params=params).status_code == 503
    assert sandbox_agent.get("agent/stream/status").status_code == 200  # other paths untouched
    time.sleep(3.2)
    assert sandbox_agent.get("agent/stream/comments", params=params).status_code == 200
    assert [e.get("fault", False) for e in sandbox.requests()[-3:]] == [True, False, False]


def test_fault_kinds_over_http_and_their_listing(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    url = f"{sandbox.origin}/_sandbox/faults"
    for bad in ({"kind": "meteor"}, {"kind": "slow", "delay_s": 0}, {"kind": "ratelimit", "retry_after": "x"},
                {"status": 200}, {"kind": "reset", "count": 0}):
        assert requests.post(url, json=bad, timeout=5).status_code == 400, bad
    rules = [{"kind": "ratelimit", "retry_after": 7, "count": 1, "paths": "agent/stream/status"},
             {"kind": "truncate", "count": 1, "paths": "agent/stream/status"},
             {"kind": "reset", "seconds": 60, "paths": "agent/verification-status"},
             {"kind": "slow", "delay_s": 0.3, "count": 2, "paths": "agent/stream/comments"},
             {"kind": "publish_refused", "count": 3}]
    for rule in rules:
        assert requests.post(url, json=rule, timeout=5).status_code == 200
    listed = requests.get(url, timeout=5).json()["faults"]
    assert [(f["kind"], f["hits"], f["active"]) for f in listed] == [(r["kind"], 0, True) for r in rules]
    assert listed[0]["retry_after"] == 7 and listed[0]["status"] == 429 and listed[3]["delay_s"] == 0.3
    limited = sandbox_agent.get("agent/stream/status")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    cut = sandbox_agent.get("agent/stream/status")
    assert cut.status_code == 200 and int(cut.headers["Content-Length"]) == len(cut.content)
    with pytest.raises(json.JSONDecodeError):
        cut.json()
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        sandbox_agent.get("agent/verification-status")  # headers, half the body, connection dropped
    started = time.monotonic()
    slow = sandbox_agent.get("agent/stream/comments", params={"userDbId": sandbox_agent.user_id})
    assert slow.json() == {"comments": []} and time.monotonic() - started >= 0.25
    assert sandbox_agent.get("agent/stream/status").status_code == 200  # the status faults are used up
    active = {f["kind"]: f["hits"] for f in requests.get(url, timeout=5).json()["faults"]}
    assert active == {"reset": 1, "slow": 1, "publish_refused": 0}
    every = requests.get(url, params={"all": "1"}, timeout=5).json()["faults"]
    assert [(f["kind"], f["hits"], f["active"]) for f in every][:2] == [("ratelimit", 1, False), ("truncate", 1, False)]
    kinds = [e.get("fault_kind") for e in sandbox.requests() if e.get("fault")]
    assert kinds == ["ratelimit", "truncate", "reset", "slow"]
    assert requests.delete(url, timeout=5).json() == {"faults": []}


@requires_ffmpeg
def test_publish_refused_fault_refuses_real_publishes(rtmp_sandbox: Sandbox) -> None:
    sb = rtmp_sandbox
    a = register_agent(sb, verified=True)
    rtmp = a.post("agent/rtmp").json()
    a.post("agent/stream/start").raise_for_status()
    sb.set_fault(kind="publish_refused", count=1)
    assert publish_test_stream(rtmp["url"], rtmp["key"], seconds=1).returncode != 0
    assert publish_test_stream(rtmp["url"], rtmp["key"], seconds=1).returncode == 0  # count used up
    events = [(e["status"], e.get("fault_kind")) for e in sb.requests() if e.get("event") == "RTMP publish"]
    assert events == [(403, "publish_refused"), (200, None)]
    assert sb.faults(include_done=True)[0]["hits"] == 1


def test_redirect_and_echo_headers(sandbox: Sandbox) -> None:
    echo = requests.get(f"{sandbox.origin}/_sandbox/echo-headers", headers={"Authorization": "Bearer rtk_secret"},
                        timeout=5).json()
    assert echo["authorization"] == "present" and "rtk_secret" not in json.dumps(echo)
    with Sandbox(port=0, rtmp=False) as other:
        target = f"{other.origin}/_sandbox/echo-headers"
        resp = requests.get(f"{sandbox.origin}/_sandbox/redirect", params={"to": target}, allow_redirects=False,
                            timeout=5)
        assert resp.status_code == 302 and resp.headers["Location"] == target
        followed = requests.get(f"{sandbox.origin}/_sandbox/redirect", params={"to": target},
                                headers={"Authorization": "Bearer rtk_secret"}, timeout=5)
        assert followed.json()["authorization"] == "absent"  # requests drops it across ports
        assert other.requests()[-1]["auth"] is False
    assert requests.get(f"{sandbox.origin}/_sandbox/redirect", params={"to": "file:///etc/passwd"},
                        allow_redirects=False, timeout=5).status_code == 400


# ----- public API, skill, simulator, persistence, CLI -------------------------------------------------
def test_public_endpoints(sandbox: Sandbox) -> None:
    a = register_agent(sandbox, "PublicOne", verified=True, ticker="PUB")
    key = a.post("agent/rtmp").json()["key"]
    address = a.post("agent/stream/start").json()["token"]["tokenAddress"]
    fake_publish(sandbox, key)
    sandbox.event("tip", username="whale", amount=0.5)
    sandbox.event("trade", username="whale", amount=50.0)
    base = sandbox.base_url

    def get(path: str, **params: str) -> object:
        resp = requests.get(f"{base}/{path}", params=params, timeout=5)
        assert resp.status_code == 200, (path, resp.text)
        return resp.json()

    assert get("users/search/public")[0]["user_id"] == a.user_id
    live = get("users/live/")
    assert {"user_id", "username", "ticker", "token_address", "market_cap", "rank"} <= set(live[0])
    assert get("users/newest")[0]["username"] == "PublicOne"
    metadata = set(get(f"users/metadata/{a.user_id}"))
    assert {"username", "bio", "wallet_address", "social_links", "profile_picture_url"} <= metadata
    assert get("users/streamer/publicone")["streamer_id"] == a.user_id
    assert get(f"users/streamer/{a.user_id}")["session"]["is_live"] is True
    session = get("sessions/active/")[0]
    assert {"session_id", "streamer_id", "title"} <= set(session)
    assert get(f"sessions/active/{a.user_id}/")["session_id"] == session["session_id"]
    assert "token" in get(f"sessions/{session['session_id']}/join/")
    assert get("sessions/scheduled/") == [] and get(f"sessions/scheduled/{a.user_id}/") == []
    assert {"user_id", "name", "ticker", "address", "current_market_cap", "rank"} <= set(get("tokens/top/")[0])
    assert {"username", "ticker", "growth_24h", "market_cap"} <= set(get("tokens/trending/")[0])
    assert get("trades/recent/", limit="10")["trades"][0]["address"] == address
    assert get(f"trades/recent/{address}/")["trades"][0]["action"] == "buy"
    assert get("trades/top-volume/", window="24h")[0]["address"] == address
    assert get("trades/top-count/")[0]["trade_count"] == 1
    chats = get("chat/", streamer_id=a.user_id, limit="50")["chats"]
    assert {c["type"] for c in chats} == {"tip", "trade"} and all("tip_data" in c for c in chats)
    assert get("chat/top-tippers", streamer_id=a.user_id)[0]["username"] == "whale"
    a.post("agent/stream/stop")
    assert get(f"sessions/recorded/{a.user_id}/")[0]["session_id"] == session["session_id"]
    for path in ("users/metadata/nope", "users/streamer/nope", "tokens/nope/stats", "sessions/nope/join/"):
        resp = requests.get(f"{base}/{path}", timeout=5)
        assert resp.status_code == 404 and "error" in resp.json()


def test_skill_json_and_md_follow_the_settable_version(sandbox: Sandbox) -> None:
    assert requests.get(f"{sandbox.origin}/skill.json", timeout=5).json()["version"] == "2.1.2"
    assert "version 2.1.2" in requests.get(f"{sandbox.origin}/skill.md", timeout=5).text
    requests.post(f"{sandbox.origin}/_sandbox/settings", json={"skill_version": "2.2.0"}, timeout=5).raise_for_status()
    assert requests.get(f"{sandbox.origin}/skill.json", timeout=5).json()["version"] == "2.2.0"
    assert "version 2.2.0" in requests.get(f"{sandbox.origin}/skill.md", timeout=5).text


def test_viewer_simulator_posts_hostile_comments_and_varies_viewers(sandbox: Sandbox,
                                                                    sandbox_agent: SandboxAgent) -> None:
    a = sandbox_agent
    fake_publish(sandbox, a.post("agent/rtmp").json()["key"])
    a.post("agent/stream/start")
    sandbox.settings(viewer_interval=60)  # on, but ticks are driven by hand below
    sandbox.simulator.rng.seed(20261127)  # deterministic: 15 unseeded ticks miss a hostile one ~0.2% of runs
    counts = set()
    for _ in range(15):
        sandbox.call(sandbox.simulator.tick)
        counts.add(a.get("agent/stream/status").json()["viewers"])
    page = a.get("agent/stream/comments", params={"userDbId": a.user_id, "limit": 100}).json()["comments"]
    texts = [c["text"] for c in page]
    assert len(texts) >= 15
    assert any(any(ord(ch) < 32 for ch in t) or len(t) > 500 or t.startswith("!") for t in texts)
    assert len(counts) > 1


def test_viewer_simulator_loop_runs_on_its_interval(sandbox: Sandbox, sandbox_agent: SandboxAgent) -> None:
    a = sandbox_agent
    fake_publish(sandbox, a.post("agent/rtmp").json()["key"])
    a.post("agent/stream/start")
    sandbox.settings(viewer_interval=0.2)
    params = {"userDbId": a.user_id}
    assert sandbox.wait_for(lambda: len(a.get("agent/stream/comments", params=params).json()["comments"]) >= 2, 5)
    assert a.get("agent/stream/status").json()["viewers"] >= 1
    sandbox.settings(viewer_interval=0)


def test_agents_survive_a_restart_with_state_dir(tmp_path: Path) -> None:
    with Sandbox(port=0, rtmp=False, state_dir=tmp_path) as first:
        a = register_agent(first, "Persisted")
    assert (tmp_path / "sandbox-state.json").stat().st_mode & 0o777 == 0o600
    with Sandbox(port=0, rtmp=False, state_dir=tmp_path) as second:
        again = SandboxAgent(a.name, a.access_token, a.user_id, a.agent_id, second.base_url)
        assert again.get("agent/stream/status").json()["userDbId"] == a.user_id


def test_cli_prints_ready_lines_and_requests_and_stops_on_sigterm() -> None:
    code = ("import sys; from appliance.sandbox import run_sandbox_cli; "
            "sys.exit(run_sandbox_cli('127.0.0.1', 0, False, 0, 'documented', None))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("sandbox: base_url http://127.0.0.1:")
        base = first.split()[2]
        requests.get(f"{base}/agent/stream/status", headers={"Authorization": "Bearer rtk_hidden"}, timeout=5)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "GET /api/v1/agent/stream/status -> 401 auth" in out and "rtk_hidden" not in out
    assert "sandbox: stopped" in out


# ----- the real ingest ---------------------------------------------------------------------------------
@requires_ffmpeg
def test_real_publish_goes_live_records_and_refuses_old_keys(rtmp_sandbox: Sandbox) -> None:
    sb = rtmp_sandbox
    a = register_agent(sb, verified=True)
    old = a.post("agent/rtmp").json()
    rtmp = a.post("agent/rtmp").json()
    assert rtmp["url"] == sb.rtmp_url
    a.post("agent/stream/start").raise_for_status()
    refused = publish_test_stream(rtmp["url"], old["key"], seconds=1)
    assert refused.returncode != 0  # on_publish answered 403 for the superseded key
    assert a.get("agent/stream/status").json()["is_live"] is False

    proc = publish_test_stream(rtmp["url"], rtmp["key"], seconds=3, background=True)
    try:
        assert sb.wait_for(lambda: a.get("agent/stream/status").json()["is_live"], timeout=8), "never went live"
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert sb.wait_for(lambda: not a.get("agent/stream/status").json()["is_live"], timeout=5)
    assert sb.wait_for(lambda: any(r["complete"] for r in sb.recordings()), timeout=5)
    recording = next(r for r in sb.recordings() if r["complete"])
    assert recording["userDbId"] == a.user_id and Path(recording["path"]).parent == sb.record_dir
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", recording["path"]],
                           capture_output=True, text=True, timeout=20, check=True)
    codecs = {s["codec_type"]: s["codec_name"] for s in json.loads(probe.stdout)["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}
    rtmp_events = [(e["event"], e["status"]) for e in sb.requests() if e["method"] == "RTMP"]
    assert rtmp_events[:3] == [("RTMP publish", 403), ("RTMP publish", 200), ("RTMP publish_done", 200)]
    listed = requests.get(f"{sb.origin}/_sandbox/recordings", timeout=5).json()
    assert listed["record_dir"] == str(sb.record_dir) and listed["recordings"]
    assert a.post("agent/stream/stop").json()["status"] == "stopped"
    assert os.access(recording["path"], os.R_OK)
