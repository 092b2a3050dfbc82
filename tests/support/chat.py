"""Helpers for chat tests against the sandbox: an agent, a configured :class:`ChatLoop`, waits.

  * ``chat_agent(sb, name)``      — registers an agent; returns (client, userDbId, token)
  * ``make_chat(sb, tmp, ...)``   — a ChatLoop on that agent (config overrides as keyword dicts)
  * ``agent_lines(client, me)``   — what the agent said in its chat, oldest first
  * ``disconnect_sockets(sb)``    — the sandbox drops every Socket.IO client (they reconnect)
  * ``FakeOpenAI``                — a local OpenAI-compatible chat-completions server
  * ``DripServer``                — an endpoint that can drip its answer one byte at a time
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from appliance.chat import ChatLoop, ChatServices
from appliance.chat.settings import ChatConfig
from appliance.core.store import StateStore
from appliance.retake.client import RetakeClient
from tests.support.data import WALLET, config, register
from tests.support.tree import wait_until


def chat_agent(sb, name: str) -> tuple[RetakeClient, str, str]:
    result, client = register(RetakeClient(config(sb)), name)
    return client, result.userDbId, result.access_token


def chat_config(**overrides: Any) -> ChatConfig:
    base: dict[str, Any] = {"poll_s": 1, "quiet_poll_s": 1, "quiet_after_s": 600, "realtime": False,
                            "max_messages_per_minute": 120, "burst": 20}
    base.update(overrides)
    return ChatConfig.model_validate(base)


def make_chat(sb, state_dir, client: RetakeClient, me: str, name: str, *, clock=None, wall=None,
              services: ChatServices | None = None, stop: threading.Event | None = None,
              token: str = "", **overrides: Any) -> ChatLoop:
    kw: dict[str, Any] = {}
    if clock is not None:
        kw["clock"] = clock
    if wall is not None:
        kw["wall"] = wall
    return ChatLoop(client, chat_config(**overrides), user_db_id=me, agent_name=name,
                    state=StateStore(state_dir), stop_event=stop or threading.Event(), agent_wallet=WALLET,
                    services=services, secrets=lambda: [token] if token else [], **kw)


def agent_lines(client: RetakeClient, me: str, name: str | None = None) -> list[str]:
    """The agent's own messages in its chat, oldest first (by the sender's platform id), read from
    the public chat endpoint, which names the sender in every comments shape."""
    url = client.base_url.rstrip("/") + "/chat/"
    chats: list[dict[str, Any]] = []
    before = None
    for _ in range(20):
        params = {"streamer_id": me, "limit": 100, **({"before_chat_event_id": before} if before else {})}
        page = requests.get(url, params=params, timeout=5).json()["chats"]  # newest first
        chats += page
        if len(page) < 100:
            break
        before = page[-1]["chat_event_id"]
    return [c["text"] for c in reversed(chats) if c["sender_user_id"] == me]


def disconnect_sockets(sb) -> int:
    sio = sb.app_state.sio

    async def drop() -> int:
        sids = [sid for sid, _eio in sio.manager.get_participants("/", None)]
        for sid in sids:
            await sio.disconnect(sid)
        return len(sids)

    return sb.call(drop)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(predicate, timeout, what)


class FakeOpenAI:
    """``POST /v1/chat/completions`` on 127.0.0.1: records each request (headers and body) and
    answers ``answer(body)``'s text after ``delay`` seconds (a hang when the delay is long); with
    ``key``, a request without ``Authorization: Bearer <key>`` gets 401 as OpenAI answers it."""

    def __init__(self, answer: Callable[[dict], str] = lambda body: "Hello from the model.", delay: float = 0.0,
                 key: str | None = None):
        self.answer, self.delay, self.key = answer, delay, key
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw.decode(),
                                       "body": body})
                time.sleep(outer.delay)
                if outer.key is not None and self.headers.get("Authorization") != f"Bearer {outer.key}":
                    refused = b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(refused)))
                    self.end_headers()
                    self.wfile.write(refused)
                    return
                data = json.dumps({"id": "x", "object": "chat.completion", "model": body.get("model"),
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": outer.answer(body)}}]})
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data.encode())
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class DripServer:
    """An HTTP endpoint that answers ``answer(body)`` (JSON) at once, or — while ``drip`` is on —
    writes its whole response (status line and headers included) one byte every ``interval``
    seconds, the way a stuck proxy or an overloaded model server can. ``dripping`` counts the
    responses being dripped now; ``cut`` records how long each dripped response ran before the
    client closed its connection."""

    def __init__(self, answer: Callable[[dict], dict], *, interval: float = 1.5):
        self.answer, self.interval = answer, interval
        self.drip = False
        self.dripping = 0
        self.cut: list[float] = []
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests += 1
                data = json.dumps(outer.answer(json.loads(raw or b"{}"))).encode()
                response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(data)) + data
                if not outer.drip:
                    self.wfile.write(response)
                    return
                with outer._lock:
                    outer.dripping += 1
                started = time.monotonic()
                try:
                    for i in range(len(response)):
                        self.wfile.write(response[i:i + 1])
                        self.wfile.flush()
                        time.sleep(outer.interval)
                except OSError:
                    outer.cut.append(time.monotonic() - started)
                finally:
                    with outer._lock:
                        outer.dripping -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
