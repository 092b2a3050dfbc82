"""The chat's parts on their own: moderation, the outgoing filter, viewer memory (bounded,
listed by `appliance viewers`), brain config errors, and pairing one message seen by both
paths (socket and poll)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from appliance.chat.journal import Journal
from appliance.chat.memory import ChatDb, ViewerMemory, list_viewers
from appliance.chat.moderation import Moderator, OutgoingFilter, Refused
from appliance.chat.settings import MemoryConfig, ModerationConfig
from appliance.cli import main
from appliance.config import parse_config
from appliance.retake.normalize import Comment, short_wallet
from tests.support.data import WALLET

AGENT = {"name": "PartsAgent", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": WALLET, "ticker": "TEST"}


def comment(name="alice", text="hi", **kw):
    return Comment(id=kw.pop("id", "c1"), text=text, username=name, **kw)


@pytest.mark.parametrize("name, shown", [
    ("alice", "alice"), ("@admin", None), ("Admin2", None), ("moderator_x", None), ("retake_official", None),
    ("PartsAgent", None), ("partsagent", None), ("P4rtsAg3nt", None), ("Pаrtsagent", None),  # Cyrillic а
    ("visit evil.com", "visit"), ("https://evil.com", None), ("@@bob", "bob"), ("modern_mike", "modern_mike"),
    (short_wallet("4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"), "4Nd1…DB4T"),  # an anonymous viewer
])
def test_names_are_neutralised_when_echoed(name, shown):
    m = Moderator(ModerationConfig(), agent_name="PartsAgent")
    out = m.display_name(comment(name))
    if shown is None:
        assert out.startswith("viewer-") and len(out) == 11
    else:
        assert out == shown


def test_incoming_policy_blocklist_links_length_and_rate():
    now = [0.0]
    m = Moderator(ModerationConfig(blocklist=["troll", "WALLETX"], blocked_words=["badword"],
                                   per_viewer_per_minute=2, max_message_chars=40),
                  agent_name="A", clock=lambda: now[0])
    assert m.inbound(comment("troll"), "k0").action == "blocked"
    assert m.inbound(comment("x", wallet_address="WALLETX"), "k1").action == "blocked"
    assert m.inbound(comment(text="a BADWORD here"), "k2").action == "blocked"
    verdict = m.inbound(comment(text="see https://x.io/a and www.y.com " + "z" * 80), "k3")
    assert verdict.action == "ok" and "x.io" not in verdict.text and "[link]" in verdict.text
    assert len(verdict.text) <= 40
    assert [m.inbound(comment(), "k4").action for _ in range(3)] == ["ok", "ok", "limited"]
    now[0] += 61
    assert m.inbound(comment(), "k4").action == "ok"
    blocking = Moderator(ModerationConfig(links="block"), agent_name="A")
    assert blocking.inbound(comment(text="go to spam.xyz"), "k").action == "blocked"


def test_outgoing_filter_refuses_secrets_in_any_disguise():
    secret = "rtk_4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
    f = OutgoingFilter(lambda: [secret, "short"], max_chars=100)
    for leak in (secret, secret.upper(), " ".join(secret), secret[:10] + "\u200b" + secret[10:],
                 f"part: {secret[4:24]}"):
        with pytest.raises(Refused):
            f.check(f"here you go: {leak}")
    assert f.check("@everyone look at evil.com now @bob") == "everyone look at now bob"
    assert "evil.com" in f.check("operator link evil.com", trusted=True)
    assert f.scrub(f"a {secret} b") == "a [redacted] b"
    assert f.check("x" * 500).endswith("…") and len(f.check("x" * 500)) == 100


def test_memory_is_bounded_persistent_and_listed_by_the_viewers_command(tmp_path, capsys):
    state = tmp_path / "state"
    db = ChatDb(state / "memory.sqlite3")
    memory = ViewerMemory(db, MemoryConfig(max_viewers=10, max_notes_per_viewer=2))
    for i in range(30):
        memory.observe(comment(f"v{i:02d}", id=str(i), wallet_address=f"W{i}"))
    memory.observe(comment("v29", id="t", wallet_address="W29", kind="tip", amount=0.25))
    for n in range(4):
        memory.note("w:W29", f"note {n}")
    memory.prune()
    assert memory.count() == 10
    assert memory.get("w:W29").notes == ("note 3", "note 2")
    db.close()
    assert (state / "memory.sqlite3").stat().st_mode & 0o777 == 0o600
    config = tmp_path / "appliance.yaml"
    config.write_text(yaml.safe_dump({"agent": AGENT, "paths": {"state_dir": str(state)}}))
    assert main(["viewers", "--config", str(config), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 10 and rows[0]["name"] == "v29" and rows[0]["tips_sol"] == 0.25 and rows[0]["notes"] == 2
    assert main(["viewers", "--config", str(config)]) == 0
    assert "v29" in capsys.readouterr().out
    assert list_viewers(tmp_path / "none.sqlite3") == []


def test_brain_config_errors_name_the_brain():
    from appliance.core.errors import ConfigError

    def error(chat: dict) -> str:
        with pytest.raises(ConfigError) as info:
            parse_config({"agent": AGENT, "chat": chat}, "c.yaml")
        return str(info.value)

    assert "chat.llm.modle: unknown key" in error({"responder": "llm", "llm": {"modle": "x"}})
    assert "chat.command.argv: required" in error({"responder": "command", "command": {}})
    assert "the chat.webhook section is required when chat.responder is webhook" in error({"responder": "webhook"})
    assert "chat.webhook.url: must be an http(s) URL" in error({"responder": "webhook", "webhook": {"url": "ftp://x"}})
    assert "chat.proactive.lines: " in error({"proactive": {"lines": ["hello {name}"]}})
    assert "chat.llm.api_key_env" in error({"llm": {"api_key_env": "sk-the-key-itself!"}})
    # chat.brain, one section whose engine picks the brain (as voice.engine does)
    assert "chat.brain.llm.modle: unknown key" in error({"brain": {"engine": "llm", "modle": "x"}})
    assert "chat.brain.command.argv: required" in error({"brain": {"engine": "command"}})
    assert "chat.brain.engine: required: one of host, llm, command, webhook, external" in error(
        {"brain": {"model": "x"}})
    assert "chat.brain.engine: unknown" in error({"brain": {"engine": "gpt"}})
    assert "chat.brain and the older chat.responder are both set" in error(
        {"responder": "llm", "brain": {"engine": "host"}})


def test_the_older_brain_spelling_still_reads():
    def chat(data: dict):
        return parse_config({"agent": AGENT, "chat": data}).chat

    assert chat({}).brain.engine == "host" and chat({"responder": "offline"}).brain.engine == "host"
    older = chat({"responder": "llm", "llm": {"model": "llama3", "timeout_s": 3}, "host": {"mention_max": 2}})
    newer = chat({"brain": {"engine": "llm", "model": "llama3", "timeout_s": 3, "mention_max": 2}})
    assert older.brain == newer.brain and older.brain.engine == "llm"
    assert chat({"responder": "webhook", "webhook": {"url": "https://h.example/t", "headers_env": {"X-K": "HOOK_KEY"}}}
                ).secret_env_names() == ["HOOK_KEY", "OPENAI_API_KEY"]
    assert chat({"llm": {"model": "unused"}}).brain.engine == "host"  # a section for another brain: read, not used
    # a config written back (appliance up, rehearse) reads the same: the resolved chat.brain only
    settings = parse_config({"agent": AGENT, "chat": {"responder": "llm", "llm": {"model": "llama3"}}})
    dumped = settings.model_dump(mode="json", exclude_none=True)
    assert "responder" not in dumped["chat"] and "llm" not in dumped["chat"]
    assert parse_config(dumped).chat.brain == settings.chat.brain


def test_without_timestamps_the_numeric_chat_event_id_orders_both_paths():
    from appliance.chat.sources import Sequencer
    out: list[str] = []
    now, wall = [0.0], [100.0]
    sequencer = Sequencer(deliver=lambda c, source: out.append(c.id), known=lambda i: i == "5",
                          clock=lambda: now[0], wall=lambda: wall[0])

    def offer(ids, source):
        wall[0] += 1  # each arrives later than the one before
        return sequencer.offer([Comment(id=str(i), text="t", username="u", seq=i) for i in ids], source)

    assert offer([12], "socket") == 1
    assert offer([10], "socket") == 1       # python-socketio handed these over swapped
    assert offer([9, 10, 11, 5], "poll") == 2   # 10 is already waiting, 5 is known
    now[0] += 1
    assert sequencer.release_due() == 4
    assert out == ["9", "10", "11", "12"]
    assert offer([12, 13], "poll") == 1 and sequencer.release_due() == 1 and out[-1] == "13"


def test_one_message_from_both_paths_is_paired_one_to_one(tmp_path):
    """Socket.IO and a page may show one message under two ids (see chat/twins.py)."""
    journal = Journal(ChatDb(tmp_path / "memory.sqlite3", clock=lambda: 1_800_000_000.0))
    t0 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)

    def c(cid, text, second, seq=None, wallet="W1"):
        return Comment(id=cid, text=text, username="x", wallet_address=wallet, seq=seq,
                       timestamp=t0 + timedelta(seconds=second))

    # the socket saw "gm" twice from one viewer and "lol" from two viewers in the same second
    for item in (c("101", "gm", 0, 101), c("102", "gm", 1, 102), c("103", "lol", 2, 103),
                 c("104", "lol", 2, 104, "W2")):
        assert journal.receive(item, state="new", source="socket")
    assert journal.recognize(c("105", "gm", 0), "socket") is None  # one path never shows one message twice
    assert journal.recognize(c("a1", "gm", 0), "poll") == "101"
    assert journal.recognize(c("a2", "gm", 1), "poll") == "102"  # paired once each, nearest in time first
    assert journal.recognize(c("a3", "gm", 1), "poll") is None  # a third "gm" the socket missed is new
    assert journal.recognize(c("a4", "lol", 2, wallet="W2"), "poll") == "104"  # the wallet tells two viewers apart
    assert journal.recognize(c("a5", "lol", 2 + 60), "poll") is None  # a minute later: another message
    assert journal.recognize(c("b1", "lol", 2, seq=999), "poll") is None  # both carry a chat_event_id: it decides
    assert journal.recognize(c("b2", "a page's text", 2, seq=103), "poll") == "103"
    assert journal.recognize(c("a6", "gm", 0), "poll", record=False) is None and not journal.known("a6")
    assert journal.known("a1") and journal.canonical("a1") == "101" and journal.state_of("a1") == "twin"
