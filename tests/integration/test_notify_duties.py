"""The builder's notifications over real HTTP webhooks (issue 20.3): a platform shutdown
warning — published on the event bus as the chat does (a fake publisher stands in for it here)
— reaches every webhook at once, urgent, ahead of what was queued and whatever the webhook's
``events``; and a webhook that answers a notification with a direction sets it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from appliance.config import parse_config
from appliance.control.events import EventBus
from appliance.core.store import StateStore
from appliance.live.direction import Directions
from appliance.live.notify import Notifier
from appliance.live.watch import StreamWatch
from tests.support.data import WALLET
from tests.support.tree import wait_until as wait_for

AGENT = {"name": "NotifyAgent", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": WALLET, "ticker": "NOT"}


class Webhooks:
    """/slow (0.4 s a request), /answer (a direction in its answer), /huge (20 KB answer),
    /garbage (not JSON); everything else answers 204. Records (path, arrival, body)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, float, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/slow":
                    time.sleep(0.4)
                outer.got.append((self.path, time.monotonic(), body))
                answer = {"/answer": json.dumps({"direction": "\x1b[2JA quiz about the deep ocean\x07"}),
                          "/huge": json.dumps({"direction": "x" * 20_000}),
                          "/garbage": "direction: yes"}.get(self.path, "").encode()
                self.send_response(200 if answer else 204)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self, path: str) -> list[str]:
        return [body.get("event") or body.get("content") or body.get("text") for p, _, body in self.got if p == path]

    def close(self) -> None:
        self.httpd.shutdown()


def test_a_shutdown_warning_reaches_every_webhook_at_once_ahead_of_the_queue(tmp_path):
    hooks = Webhooks()
    settings = parse_config({"agent": AGENT, "paths": {"state_dir": str(tmp_path)}, "notify": {"webhooks": [
        {"url": f"{hooks.base}/slow"}, {"url": f"{hooks.base}/only-live", "events": ["live"]},
        {"url": f"{hooks.base}/discord", "preset": "discord", "events": ["live"]},
        {"url": f"{hooks.base}/slack", "preset": "slack"}]}})
    notifier = Notifier(settings)
    bus = EventBus()
    bus.subscribe(StreamWatch(notifier, settings, store=StateStore(tmp_path)))
    try:
        for n in range(5):
            notifier.notify("viewers_low", f"ordinary note {n}")  # a backlog at the slow webhook
        time.sleep(0.1)
        warned = time.monotonic()
        # what the chat publishes when the platform sends a shutdown warning (the fake publisher)
        bus.publish("warning", {"text": "This stream will be shut down for low effort @everyone", "source": "socket"})
        wait_for(lambda: len(hooks.events("/slow")) == 6, 10, "everything at the slow webhook")
        arrivals = {p: t for p, t, body in hooks.got if "URGENT" in json.dumps(body) or body.get("urgent")}
        assert set(arrivals) == {"/slow", "/only-live", "/discord", "/slack"}  # every channel, filters or not
        assert max(arrivals[p] for p in ("/only-live", "/discord", "/slack")) - warned < 0.5  # at once
        slow = hooks.events("/slow")
        assert slow[0] == "viewers_low" and slow[1] == "shutdown_warning", slow  # ahead of 4 queued notes
        assert hooks.events("/only-live") == ["shutdown_warning"]  # its events filter skipped the notes only
        discord = next(body for p, _, body in hooks.got if p == "/discord")
        assert discord["content"].startswith("@here **URGENT: shutdown warning**")
        assert "@everyone" not in discord["content"]  # the platform's text cannot ping on its own
        assert discord["allowed_mentions"] == {"parse": ["everyone"]}
        slack = next(body for p, _, body in hooks.got if p == "/slack" and "URGENT" in body["text"])
        assert slack["text"].startswith("<!channel> *URGENT: shutdown warning*")
        logged = [json.loads(line) for line in settings.notify_file().read_text().splitlines()]
        (warning,) = [n for n in logged if n["event"] == "shutdown_warning"]
        assert warning["urgent"] is True and "treat it as a crisis" in warning["text"].lower()
    finally:
        notifier.close(timeout=1)
        hooks.close()


def test_a_webhook_answering_a_notification_sets_the_direction(tmp_path):
    hooks = Webhooks()
    settings = parse_config({"agent": AGENT, "paths": {"state_dir": str(tmp_path)}, "notify": {"webhooks": [
        {"url": f"{hooks.base}/huge"}, {"url": f"{hooks.base}/garbage"},
        {"url": f"{hooks.base}/answer", "events": ["live"]}]}})
    topics: list[str] = []
    store = StateStore(tmp_path)
    directions = Directions(settings.live.direction, store=store, topic=topics.append)
    notifier = Notifier(settings, on_direction=directions.from_webhook)
    try:
        notifier.notify("live", "I'm live ... which direction?")
        wait_for(lambda: topics, 10, "the direction from the webhook's answer")
        time.sleep(0.5)  # the other two answered too: neither took effect
        assert topics == ["A quiz about the deep ocean"]
        assert store.data.direction["source"] == "webhook"
        assert StateStore(tmp_path).data.direction["text"] == "A quiz about the deep ocean"
    finally:
        notifier.close(timeout=1)
        hooks.close()
