"""Chat reaching outside the appliance: operator webhooks (a real local HTTP receiver) and
cross-stream chat (`appliance chat --to NAME TEXT`) against the sandbox."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

from appliance.cli import main
from appliance.config import parse_config
from appliance.control.events import EventBus
from appliance.live.notify import Notifier
from appliance.live.watch import StreamWatch
from appliance.retake.credentials import Credentials, Secret, save_credentials
from tests.support.chat import agent_lines, chat_agent
from tests.support.data import WALLET

AGENT = {"name": "PartsAgent", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": WALLET, "ticker": "TEST"}


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
