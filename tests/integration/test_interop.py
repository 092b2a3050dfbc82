"""Every payload shape retake.tv has been seen to send, served by the sandbox: each variant
through the client, and each comments shape end to end through the chat loop (the normalising
layer on literal samples is tests/unit/test_normalize.py)."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from appliance.chat import ChatLoop, OfflineResponder
from appliance.chat.settings import ChatConfig
from appliance.config import parse_config
from appliance.core.errors import CredentialsError
from appliance.core.store import StateStore
from appliance.retake.client import RetakeClient
from appliance.retake.credentials import Secret, load_credentials
from appliance.retake.normalize import short_wallet
from appliance.retake.verification import register_agent
from appliance.sandbox.platform import (
    COMMENT_SHAPES,
    FIELD_DRIFT,
    REGISTER_SHAPES,
    RTMP_SHAPES,
)
from appliance.sandbox.viewers import viewer
from tests.support.data import W1, W2, config, register
from tests.support.sandbox import WALLET, publish_test_stream, requires_ffmpeg

# --- each variant served by the sandbox, through the client ------------------------------------------

def post_mix(sandbox, me: str) -> None:
    sandbox.post_comment("first", username="alice", user_db_id=me)
    sandbox.post_comment("second", username="", user_db_id=me, wallet=W1)
    sandbox.post_comment("third", username="", user_db_id=me, wallet=W2)


@pytest.mark.parametrize("shape", COMMENT_SHAPES)
def test_every_comments_shape_through_the_client(sandbox, shape):
    _, client = register(RetakeClient(config(sandbox)), f"Shape{COMMENT_SHAPES.index(shape)}")
    me = client.stream_status().userDbId
    post_mix(sandbox, me)
    client.chat_send("agent line", me)
    sandbox.settings(comments_shape=shape)
    got = client.comments(me, limit=100)
    assert [c.text for c in got] == ["first", "second", "third", "agent line"]
    names = [c.username for c in got]
    assert names[0] == "alice" and names[3] == f"Shape{COMMENT_SHAPES.index(shape)}"
    if shape != "flat_v1":  # the skill 1.x shape carries no wallet: an anonymous viewer is just "viewer"
        assert names[1:3] == [short_wallet(W1), short_wallet(W2)] and names[1] != names[2]
        assert (got[1].wallet_address, got[2].wallet_address) == (W1, W2)
    platform_ids = shape in ("observed", "observed_wrapped", "comment_created_at")
    assert got[0].user_id == (viewer("alice").user_id if platform_ids else "")  # never the fid
    assert got[3].user_id == (me if platform_ids else "")
    assert len({c.id for c in got}) == 4 and client.stats.comments_skipped == {}
    older = client.comments(me, limit=2, before_id=got[2].id)  # paging back from any shape's id
    assert [c.text for c in older] == ["first", "second"]


def test_empty_messages_are_skipped_and_counted(sandbox):
    _, client = register(RetakeClient(config(sandbox)), "EmptyOnes")
    me = client.stream_status().userDbId
    for text in ("", "\x1b[2J\x07", "real"):
        sandbox.post_comment(text, username="mallory", user_db_id=me)
    assert [c.text for c in client.comments(me)] == ["real"]
    assert client.stats.comments_skipped == {"empty_text": 2}


def settings_for(sandbox, tmp_path, name: str):
    return parse_config({"agent": {"name": name, "description": "d", "image_url": "https://example.com/a.png",
                                   "wallet_address": WALLET, "ticker": "REG"},
                         "retake": {"base_url": sandbox.base_url, "sandbox": True, "retries": 0},
                         "paths": {"state_dir": str(tmp_path)}})


@pytest.mark.parametrize("shape", REGISTER_SHAPES)
def test_registration_saves_the_token_whatever_the_other_fields_hold(sandbox, tmp_path, shape):
    sandbox.settings(register_shape=shape)
    settings = settings_for(sandbox, tmp_path, f"Reg{REGISTER_SHAPES.index(shape)}")
    _creds, path = register_agent(settings, RetakeClient(settings.retake))
    saved = load_credentials(path)
    issued = sandbox.call(lambda: next(a for a in sandbox.platform.agents.values() if a.name == settings.agent.name))
    assert saved is not None and saved.access_token == Secret(issued.access_token) and saved.userDbId == issued.user_id
    assert saved.wallet_address == WALLET and saved.token_address == ""
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_token_is_on_disk_even_when_nothing_else_can_be_learned(sandbox, tmp_path):
    sandbox.settings(register_shape="token_only")
    sandbox.set_fault(500, count=5, paths="agent/stream/status")
    settings = settings_for(sandbox, tmp_path, "TokenOnly")
    with pytest.raises(CredentialsError, match="access token is saved"):
        register_agent(settings, RetakeClient(settings.retake))
    on_disk = json.loads(settings.credentials_path().read_text())
    assert on_disk["access_token"].startswith("rtk_") and on_disk["userDbId"] == ""


@requires_ffmpeg
def test_each_rtmp_spelling_goes_live(rtmp_sandbox):
    sb, publishers, clients = rtmp_sandbox, [], []
    try:
        for i, shape in enumerate(RTMP_SHAPES):
            _, client = register(RetakeClient(config(sb)), f"Rtmp{i}")
            sb.settings(rtmp_shape=shape)
            creds = client.rtmp()
            assert creds.url == sb.rtmp_url
            client.stream_start()
            publishers.append(publish_test_stream(creds.url, creds.key.reveal(), seconds=6, background=True))
            clients.append(client)
        for shape, client in zip(RTMP_SHAPES, clients, strict=False):
            assert sb.wait_for(lambda client=client: client.stream_status().is_live, timeout=15), \
                f"{shape} never went live"
    finally:
        for proc in publishers:
            proc.kill()
            proc.communicate()


def fake_publish(sb, key: str) -> None:
    requests.post(f"{sb.origin}/_sandbox/rtmp/on_publish", data={"name": key, "app": "live"},
                  timeout=5).raise_for_status()


@pytest.mark.parametrize("drift", list(FIELD_DRIFT))
def test_status_stats_and_live_users_keep_their_numbers(sandbox, drift):
    _, client = register(RetakeClient(config(sandbox)), f"Drift{list(FIELD_DRIFT).index(drift)}")
    client.prepare_verify()
    client.verify("https://x.com/op/status/1234567890")
    fake_publish(sandbox, client.rtmp().key.reveal())
    address = client.stream_start().token.tokenAddress  # type: ignore[union-attr]
    sandbox.settings(field_drift=drift, idle_viewers=7)
    raw = requests.get(f"{sandbox.base_url}/tokens/{address}/stats", timeout=5).json()
    assert ("market_cap" in raw) == (drift == "none")  # the sandbox really serves the drifted spelling
    status = client.stream_status()
    assert status.is_live and status.viewers == 7
    assert client.token_stats(address).market_cap == 5000.0
    me = [u for u in client.live_users() if u.user_id == status.userDbId]
    assert len(me) == 1 and me[0].market_cap == 5000.0


# --- end to end: each comments shape through the chat loop ----------------------------------------------

def agent_replies(sandbox, me: str, after: int) -> list[str]:
    chats = requests.get(f"{sandbox.base_url}/chat/", params={"streamer_id": me, "limit": 100},
                         timeout=5).json()["chats"]
    return [c["text"] for c in reversed(chats) if c["sender_user_id"] == me][after:]


@pytest.mark.parametrize("shape", COMMENT_SHAPES)
def test_chat_loop_answers_exactly_the_messages_that_deserve_it(sandbox, tmp_path, shape):
    name = f"Loop{COMMENT_SHAPES.index(shape)}"
    _, client = register(RetakeClient(config(sandbox)), name)
    me = client.stream_status().userDbId
    sandbox.settings(comments_shape=shape)
    loop = ChatLoop(client, ChatConfig(), user_db_id=me, agent_name=name, state=StateStore(tmp_path),
                    responder=OfflineResponder(), stop_event=threading.Event())
    loop.poll_once()  # the baseline
    assert loop.send("our own line, never answered")
    before = len(agent_replies(sandbox, me, 0))
    sandbox.post_comment("hello there", username="alice", user_db_id=me)
    sandbox.post_comment("!uptime", username="bob", user_db_id=me)
    sandbox.post_comment("hi", username="", user_db_id=me, wallet=W1)
    sandbox.post_comment("hey", username="", user_db_id=me, wallet=W2)
    sandbox.post_comment("", username="ghost", user_db_id=me)
    sandbox.post_comment("\x1b[2J\x07", username="ghost", user_db_id=me)
    for _ in range(3):
        loop.poll_once()
    replies = agent_replies(sandbox, me, before)
    # alice, bob and the two anonymous viewers are answered; nothing for ghost or us. The chat may
    # greet several new viewers in one line (a burst is coalesced), so count answers, then names.
    states = loop.journal.counts()
    assert states.get("answered") == 4 and not states.get("new") and not states.get("replying"), (states, replies)
    assert 2 <= len(replies) <= 4, replies
    assert not any("ghost" in r or "our own line" in r for r in replies)
    assert sum("alice" in r for r in replies) == 1 and sum(r.startswith("bob") for r in replies) == 1
    if shape == "flat_v1":  # no wallet in that shape: both anonymous viewers are "viewer"
        assert any("viewer" in r for r in replies)
    else:
        assert [sum(short_wallet(w) in r for r in replies) for w in (W1, W2)] == [1, 1]


def test_the_shape_switch_over_http_and_the_cli(sandbox):
    from appliance.cli import SANDBOX_COMMENT_SHAPES
    assert SANDBOX_COMMENT_SHAPES == COMMENT_SHAPES  # spelled twice so the CLI does not import aiohttp
    url = f"{sandbox.origin}/_sandbox/settings"
    for name, values in (("comments_shape", COMMENT_SHAPES), ("register_shape", REGISTER_SHAPES),
                         ("rtmp_shape", RTMP_SHAPES), ("field_drift", tuple(FIELD_DRIFT))):
        for value in values:
            assert requests.post(url, json={name: value}, timeout=5).json()[name] == value
        bad = requests.post(url, json={name: "nope"}, timeout=5)
        assert bad.status_code == 400 and name in bad.json()["error"]
    register(RetakeClient(config(sandbox)), "Switch")
    anon = requests.post(f"{sandbox.origin}/_sandbox/comments", json={"text": "hi", "anonymous": True, "wallet": W1},
                         timeout=5).json()
    assert (anon["sender_username"], anon["sender_wallet_address"]) == (None, W1)
