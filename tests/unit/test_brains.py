"""The host brain on literal chat: a tip read from a page is thanked by its amount."""

from __future__ import annotations


def test_a_tip_read_from_a_page_is_thanked_by_amount():
    """A documented-shape comment that also carries the tip's type and amount (the normaliser
    reads ``type`` and ``tip_data.amount``/``amount``) is thanked by amount, not acknowledged."""
    from appliance.chat.brains import ChatContext, HostBrain, Incoming, plan_turns
    from appliance.retake.normalize import normalize_comment
    item = {"_id": "6b09a19c1bed47aec10067ac", "streamId": "s", "text": "tipped 0.3 SOL",
            "timestamp": "2026-11-27T15:00:00.000Z", "type": "tip", "tip_data": {"amount": 0.3},
            "author": {"walletAddress": "W", "fusername": "gus", "fid": 1}}
    comment = normalize_comment(item)
    assert (comment.kind, comment.amount) == ("tip", 0.3)
    turns = plan_turns([Incoming(comment, "gus", comment.text, 0.0)])
    assert [t.kind for t in turns] == ["tip"]
    assert HostBrain().respond(turns[0], ChatContext("A", 0.0)) == "gus, thank you for the 0.3 SOL tip!"
