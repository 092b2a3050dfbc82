"""Moderation, viewer memory (bounded, listed by `appliance viewers`), operator webhooks, and
cross-stream chat (`appliance chat --to NAME TEXT`)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from appliance.chat.journal import Journal
from appliance.chat.memory import ChatDb, ViewerMemory, list_viewers
from appliance.chat.moderation import Moderator, OutgoingFilter, Refused
from appliance.chat.settings import MemoryConfig, ModerationConfig
from appliance.cli import main
from appliance.config import parse_config
from appliance.control.events import EventBus
from appliance.live.notify import Notifier
from appliance.live.watch import StreamWatch
from appliance.retake.credentials import Credentials, Secret, save_credentials
from appliance.retake.normalize import Comment, short_wallet
from tests.support.chat import agent_lines, chat_agent
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


class Hooks:
    """Local webhook endpoints: /ok, /flaky (500 twice), /slow (10 s), /gone (404)."""

    def __init__(self) -> None:
        self.bodies: dict[str, list] = {}
        self.flaky = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 200
                if self.path == "/flaky":
                    outer.flaky += 1
                    status = 500 if outer.flaky <= 2 else 200
                elif self.path == "/slow":
                    time.sleep(10)
                elif self.path == "/gone":
                    status = 404
                if status == 200:
                    outer.bodies.setdefault(self.path, []).append(body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_webhooks_presets_retries_and_never_blocking(tmp_path):
    hooks = Hooks()
    settings = parse_config({"agent": AGENT, "paths": {"state_dir": str(tmp_path)}, "notify": {
        "backoff_s": 0.05, "timeout_s": 1, "retries": 3, "low_viewers": 2, "low_viewers_after_s": 0,
        "low_viewers_every_s": 60,
        "webhooks": [{"url": f"{hooks.base}/slow"}, {"url": f"{hooks.base}/gone"},
                     {"url": f"{hooks.base}/ok"}, {"url": f"{hooks.base}/discord", "preset": "discord"},
                     {"url": f"{hooks.base}/slack", "preset": "slack", "events": ["live"]},
                     {"url": f"{hooks.base}/flaky"}]}})
    notifier = Notifier(settings)
    started = time.monotonic()
    notifier.notify("live", "I'm live at https://retake.tv/PartsAgent", url="https://retake.tv/PartsAgent")
    bus = EventBus()
    bus.subscribe(StreamWatch(notifier, settings))
    bus.publish("state", {"state": "live", "detail": ""})
    bus.publish("tip", {"amount": 0.8, "user": {"name": "gus"}})
    bus.publish("tip", {"amount": 0.01, "user": {"name": "small"}})
    bus.publish("viewers", {"count": 1})
    assert time.monotonic() - started < 0.5  # a slow webhook never blocks the caller
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(hooks.bodies.get("/flaky", [])) < 3:
        time.sleep(0.05)
    notifier.close(timeout=2)
    generic = hooks.bodies["/ok"]
    assert [b["event"] for b in generic] == ["live", "large_tip", "viewers_low"]
    assert generic[0]["url"] == "https://retake.tv/PartsAgent" and "gus tipped 0.8 SOL" in generic[1]["text"]
    assert "https://retake.tv/PartsAgent" in generic[2]["text"]
    assert hooks.bodies["/discord"][0]["content"].startswith("**live**: I'm live")
    assert hooks.bodies["/discord"][0]["allowed_mentions"] == {"parse": []}
    assert hooks.bodies["/slack"] == [{"text": "*live*: I'm live at https://retake.tv/PartsAgent"}]
    assert len(hooks.bodies["/flaky"]) == 3 and hooks.flaky >= 5  # retried after each 500
    assert "/gone" not in hooks.bodies
    lines = (tmp_path / "notifications.log").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["live", "large_tip", "viewers_low"]
    hooks.httpd.shutdown()


def test_cross_stream_chat_posts_in_another_streamers_chat(sandbox, tmp_path, capsys):
    client_a, me_a, token_a = chat_agent(sandbox, "CrossA")
    client_b, me_b, _ = chat_agent(sandbox, "CrossB")
    creds = tmp_path / "credentials.json"
    save_credentials(creds, Credentials(access_token=Secret(token_a), agent_name="CrossA", agent_id="x",
                                        userDbId=me_a, wallet_address=WALLET, ticker="CLI"))
    config = tmp_path / "appliance.yaml"
    config.write_text(yaml.safe_dump({"agent": {**AGENT, "name": "CrossA"}, "retake": {
        "base_url": sandbox.base_url, "sandbox": True}, "paths": {"credentials": str(creds),
                                                                  "state_dir": str(tmp_path / "state")}}))
    assert main(["chat", "--to", "crossb", "gm from CrossA", "--config", str(config)]) == 0
    assert "posted in CrossB's chat" in capsys.readouterr().out
    assert [c.text for c in client_b.comments(me_b) if c.wallet_address == WALLET] == ["gm from CrossA"]
    assert agent_lines(client_a, me_a) == []
    assert main(["chat", "--to", "CrossB", f"leak {token_a}", "--config", str(config)]) == 1
    assert "secret" in capsys.readouterr().err
    assert main(["chat", "--to", "Nobody", "hi", "--config", str(config)]) == 2


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
