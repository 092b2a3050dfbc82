"""Every payload shape retake.tv has been seen to send, read by the normalising layer without
losing anything (literal samples written from the field lists of issue 8: other clients' code
and tests, older skill copies; docs/payloads.md lists them). The sandbox serving each variant
through the client and the chat loop is tests/integration/test_interop.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appliance.core.errors import RetakeProtocolError
from appliance.retake.models import (
    RegisterResult,
    RtmpCredentials,
    StreamStatus,
    TokenStats,
    UserSummary,
)
from appliance.retake.normalize import (
    ALIASES,
    normalize_comment,
    parse_comments,
    short_wallet,
)
from tests.support.data import W1, W2

T0 = "2025-02-01T14:20:00Z"
SAMPLES = {
    "documented": ({"comments": [
        {"_id": "c1", "streamId": "user_abc", "text": "Great stream!", "timestamp": T0,
         "author": {"walletAddress": W1, "fusername": "viewer1", "fid": 12345, "favatar": "https://x/a.png"}},
        {"_id": "c2", "streamId": "user_abc", "text": "anon here", "timestamp": "2025-02-01T14:20:05Z",
         "author": {"walletAddress": W2, "fusername": None, "fid": None}},
    ]}, [("c1", "Great stream!", "viewer1", "", W1, "12345", None),
         ("c2", "anon here", short_wallet(W2), "", W2, "", None)]),
    "observed (bare, newest first)": ([
        {"chat_event_id": "1002", "sender_user_id": "u2", "sender_username": None, "sender_display_name": None,
         "sender_wallet_address": W1, "text": "second", "type": "message", "timestamp": "1738419605000"},
        {"chat_event_id": "1001", "sender_user_id": "u1", "sender_username": "bob", "sender_display_name": "Bob",
         "sender_wallet_address": W2, "text": "first", "type": "message", "timestamp": "1738419600000"},
    ], [("1001", "first", "bob", "u1", W2, "", 1001), ("1002", "second", short_wallet(W1), "u2", W1, "", 1002)]),
    "observed (wrapped, no timestamps, newest first)": ({"comments": [
        {"chat_event_id": "12", "sender_user_id": "u1", "sender_username": "bob", "text": "three"},
        {"chat_event_id": "11", "sender_user_id": "u1", "sender_username": "bob", "text": "two"},
        {"chat_event_id": "9", "sender_user_id": "u2", "sender_username": "eve", "text": "one"},
    ]}, [("9", "one", "eve", "u2", "", "", 9), ("11", "two", "bob", "u1", "", "", 11),
         ("12", "three", "bob", "u1", "", "", 12)]),
    "_id + comment + createdAt, author._id": ({"comments": [
        {"_id": "c7", "streamId": "s", "comment": "hello from v2", "createdAt": T0,
         "author": {"_id": "user_9", "walletAddress": W1, "fusername": "zed", "fid": 77}},
    ]}, [("c7", "hello from v2", "zed", "user_9", W1, "77", None)]),
    "flat skill 1.x": ({"comments": [{"id": "m1", "username": "oldtimer", "message": "hi", "timestamp": 1738419600}]},
                       [("m1", "hi", "oldtimer", "", "", "", None)]),
    "author_wallet bare array": ([
        {"id": 8, "author_wallet": W2, "username": None, "message": "later", "created_at": "2025-02-01T14:21:00.000Z"},
        {"id": 7, "author_wallet": W1, "username": "ann", "message": "earlier", "created_at": T0},
    ], [("7", "earlier", "ann", "", W1, "", None), ("8", "later", short_wallet(W2), "", W2, "", None)]),
    "wrapped in data": ({"data": {"comments": [{"_id": {"$oid": "c9"}, "text": "nested", "timestamp": T0}]}},
                        [("c9", "nested", "viewer", "", "", "", None)]),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_comment_sample_normalises(name):
    payload, expected = SAMPLES[name]
    got = parse_comments(payload)
    assert [(c.id, c.text, c.username, c.user_id, c.wallet_address, c.fid, c.seq) for c in got] == expected


def test_comment_keeps_the_original_out_of_repr_and_dumps():
    item = {"_id": "c1", "text": "hi", "author": {"walletAddress": W1, "favatar": "https://secret.example/x"}}
    comment = normalize_comment(item)
    assert comment.raw == item
    assert "raw" not in comment.model_dump() and "secret.example" not in repr(comment)
    assert comment.username == short_wallet(W1) != short_wallet(W2)


def test_text_that_cannot_be_found_is_skipped_never_empty(caplog):
    skipped: list[str] = []
    page = [{"_id": "a", "author": {"fusername": "x"}}, {"_id": "b", "text": "\x1b[2J\x07 "},
            {"_id": "c", "comment": None, "message": "fallback"}, 42, {"_id": "d", "text": ""}]
    assert [(c.id, c.text) for c in parse_comments(page, on_skip=skipped.append)] == [("c", "fallback")]
    assert skipped == ["no_text", "empty_text", "not_object", "empty_text"]
    tip = normalize_comment({"chat_event_id": "5", "type": "tip", "tip_data": {"amount": 0.5}})
    assert (tip.text, tip.kind, tip.amount, tip.seq) == ("tip 0.5", "tip", 0.5, 5)  # a tip without text still counts
    assert "no text under any known field" in caplog.text
    with pytest.raises(RetakeProtocolError, match="stream/comments"):
        parse_comments({"weird": [], "nope": 1})


def test_ordering_uses_timestamps_then_numeric_ids_never_string_order():
    same = "1738419600000"
    page = [{"chat_event_id": "10", "text": "b", "timestamp": same},
            {"chat_event_id": "9", "text": "a", "timestamp": same},
            {"chat_event_id": "100", "text": "c", "timestamp": "1738419601000"}]
    assert [c.text for c in parse_comments(page)] == ["a", "b", "c"]
    assert [c.text for c in parse_comments([{"chat_event_id": str(i), "text": str(i)} for i in (10, 100, 9)])] == \
        ["9", "10", "100"]
    assert parse_comments(page)[0].timestamp == datetime(2025, 2, 1, 14, 20, tzinfo=UTC)


def test_other_answers_read_every_spelling():
    assert StreamStatus.model_validate({"is_live": True, "viewer_count": "7", "token_address": None}).viewers == 7
    assert StreamStatus.model_validate({"isLive": False, "viewers": None, "userDbId": 5}).userDbId == "5"
    for key in ("market_cap", "current_market_cap", "marketCap"):
        assert TokenStats.model_validate({key: 1234.5}).market_cap == 1234.5
    assert TokenStats.model_validate({"market_cap": None, "current_market_cap": "99"}).market_cap == 99.0
    for key in ("user_id", "userDbId"):
        assert UserSummary.model_validate({key: "u1", "marketCap": 3}).user_id == "u1"
    for url_key, key_key in (("url", "key"), ("rtmp_url", "stream_key"), ("rtmpUrl", "streamKey")):
        for wrap in (lambda d: d, lambda d: {"data": d}):
            creds = RtmpCredentials.model_validate(wrap({url_key: "rtmps://ingest/live", key_key: "sk_1"}))
            assert creds.target() == "rtmps://ingest/live/sk_1" and "sk_1" not in repr(creds)
    with pytest.raises(ValueError, match="rtmp"):
        RtmpCredentials.model_validate({"url": "file:///tmp/x", "key": "sk_1"})
    registered = RegisterResult.model_validate({"access_token": "rtk_1", "token_address": None, "agent_id": 3,
                                                "wallet_address": {"odd": True}})
    assert (registered.access_token, registered.agent_id, registered.token_address, registered.wallet_address) == \
        ("rtk_1", "3", "", "")
    assert "rtk_1" not in repr(registered)
    assert set(ALIASES) >= {"comment", "register", "rtmp", "stream_status", "token_stats", "user_summary"}


