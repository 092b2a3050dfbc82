"""The local control API: how the CLI and an outside agent (an LLM runtime) drive the appliance.

HTTP on 127.0.0.1 only. A bearer token is generated at start into ``<state>/control.json``
(mode 600, with the port); every endpoint but ``/health`` and ``/ready`` requires it.
``openapi.yaml`` at the repository root documents the endpoints.

    GET  /health   200 while alive; 503 when the LIVE loop is stuck (>60 s)   (no token)
    GET  /ready    200 when live and the encoder is healthy, else 503     (no token)
    GET  /status   JSON: state, uptime, viewers, last error, ...
    GET  /metrics  Prometheus text
    POST /say      {"text": "...", "wait": false, "priority": "operator"}
                   speech into the sink, encoder keeps running; 202 + utterance id at once
    POST /scene    {"name": "brb"}     switch the on-screen scene
    POST /voice    {"flush": true, "interrupt": true, "volume": 80, "mute": false}
    POST /show     {"text": "..."}     text on screen
    POST /chat     {"message": "..."}  a line in the agent's own chat
    POST /stop     {}                  stream/stop, then exit
    GET  /events   Server-Sent Events: chat, tips, trades, follows, viewers, state, speech, replies
    POST /reply    {"message_id": "...", "text": "..."}  answer a given chat message
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from pathlib import Path
from typing import Any, Callable, Protocol

import requests

from ..errors import ApplianceError, InputError, NotFoundError
from ..files import StateLayout, write_json
from .events import EventBus, parse_last_event_id, sse_stream

log = logging.getLogger("appliance.control")
MAX_BODY = 16_384
MAX_TEXT = 2000
MAX_EVENT_STREAMS = 8
REQUEST_TIMEOUT_S = 10.0  # every read and write on a control connection (a client that stalls is dropped)
_DIGITS = re.compile(r"[0-9]+")


class Commands(Protocol):
    def health(self) -> dict[str, Any]: ...
    def ready(self) -> tuple[bool, str]: ...
    def status(self) -> dict[str, Any]: ...
    def metrics(self) -> str: ...
    def say(self, text: str, *, wait: bool = False, priority: str = "operator") -> dict[str, Any]: ...
    def show(self, text: str) -> dict[str, Any]: ...
    def chat(self, message: str) -> dict[str, Any]: ...
    def scene(self, name: str) -> dict[str, Any]: ...
    def voice(self, **options: Any) -> dict[str, Any]: ...
    def stop(self) -> dict[str, Any]: ...
    def reply(self, message_id: str, text: str, routes: list[str] | None) -> dict[str, Any]: ...


def body_length(headers: Any) -> tuple[int | None, int, str]:
    """(length, status, why) for a request's body from its headers: the length, or None with
    the error status to answer (400: not one non-negative decimal; 411: chunked; 413: too big)."""
    if headers.get("Transfer-Encoding"):
        return None, 411, "Transfer-Encoding is not supported: send Content-Length"
    values = headers.get_all("Content-Length") or []
    if not values:
        return 0, 200, ""
    if len(set(v.strip() for v in values)) != 1 or not _DIGITS.fullmatch(values[0].strip()):
        return None, 400, "Content-Length must be one non-negative integer"
    digits = values[0].strip().lstrip("0") or "0"
    length = int(digits) if len(digits) <= 9 else MAX_BODY + 1
    if length > MAX_BODY:
        return None, 413, f"body larger than {MAX_BODY} bytes"
    return length, 200, ""


def _handler(commands: Commands, token: str, bus: EventBus | None = None,
             closing: threading.Event | None = None,
             request_timeout_s: float = REQUEST_TIMEOUT_S) -> type[BaseHTTPRequestHandler]:
    streams = threading.BoundedSemaphore(MAX_EVENT_STREAMS)
    closing = closing or threading.Event()
    # routes of parts a Commands may not have (a held appliance, a test's fake): 404 without them
    scene, voice, reply = (getattr(commands, name, None) for name in ("scene", "voice", "reply"))
    posts: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
        "/say": ("text", commands.say), "/show": ("text", commands.show),
        "/chat": ("message", commands.chat),
        **({"/scene": ("name", scene)} if scene is not None else {}),
    }
    # options some POST routes take besides their text (name -> type); anything else is ignored
    options: dict[str, dict[str, type]] = {"/say": {"wait": bool, "priority": str}}

    class Handler(BaseHTTPRequestHandler):
        server_version = "retake-appliance"
        sys_version = ""
        # StreamRequestHandler puts this on the socket: a request that stalls (headers, body)
        # ends the connection instead of holding a thread forever
        timeout = request_timeout_s

        def log_message(self, fmt: str, *args: Any) -> None:  # our format, no headers
            log.debug("control %s %s", self.command, self.path)

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            given = self.headers.get("Authorization", "")
            ok = hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
            if not ok:
                self._send(401, {"error": "missing or wrong bearer token (see <state>/control.json)"})
            return ok

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/health":
                health = commands.health()
                return self._send(200 if health.get("alive") else 503, health)
            if path == "/ready":
                ok, why = commands.ready()
                return self._send(200 if ok else 503, {"ready": ok, "reason": why})
            if not self._authorized():
                return None
            if path == "/status":
                return self._send(200, commands.status())
            if path == "/metrics":
                return self._send(200, commands.metrics(), "text/plain; version=0.0.4")
            if path == "/events" and bus is not None:
                return self._events()
            return self._send(404, {"error": f"no endpoint GET {path}"})

        def _events(self) -> None:
            """Server-Sent Events until the client goes or the server closes."""
            query = parse_qs(urlsplit(self.path).query)
            last = parse_last_event_id(self.headers.get("Last-Event-ID")
                                       or (query.get("last_event_id") or [None])[0])
            kinds = [k for part in query.get("kinds", []) for k in part.split(",") if k] or None
            if not streams.acquire(blocking=False):
                return self._send(503, {"error": f"at most {MAX_EVENT_STREAMS} event streams at once"})
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("X-Accel-Buffering", "no")
                self.end_headers()
                for chunk in sse_stream(bus, last, closing=closing, kinds=kinds):  # type: ignore[arg-type]
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass  # the client went away
            finally:
                streams.release()
                self.close_connection = True

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if not self._authorized():
                return None
            length, status, why = body_length(self.headers)
            if length is None:
                self.close_connection = True  # the body (if any) is not read: the connection is spent
                return self._send(status, {"error": why})
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                self.close_connection = True
                return None
            if len(raw) < length:  # the client closed early
                self.close_connection = True
                return None
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                if path == "/stop":
                    return self._send(202, commands.stop())
                if path == "/reply" and reply is not None:
                    return self._send(200, reply(*_reply_fields(body)))
                if path == "/voice" and voice is not None:
                    return self._send(200, voice(**_typed(body, VOICE_OPTIONS)))
                if path not in posts:
                    return self._send(404, {"error": f"no endpoint POST {path}"})
                key, command = posts[path]
                text = body.get(key)
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"'{key}' must be a non-empty string")
                if len(text) > MAX_TEXT:
                    raise InputError(f"'{key}' longer than {MAX_TEXT} characters")
                result = command(text, **_typed(body, options.get(path, {})))
                return self._send(202 if result.get("queued") else 200, result)
            except ValueError as exc:
                return self._send(400, {"error": f"bad JSON: {exc}"})
            except NotFoundError as exc:
                return self._send(404, {"error": exc.message})
            except InputError as exc:
                return self._send(400, {"error": exc.message})
            except ApplianceError as exc:
                return self._send(503, {"error": str(exc)})

    return Handler


VOICE_OPTIONS: dict[str, type] = {"flush": bool, "interrupt": bool, "volume": float, "mute": bool}


def _typed(body: dict[str, Any], allowed: dict[str, type]) -> dict[str, Any]:
    """The options of ``body`` that ``allowed`` names, each of its type (InputError otherwise)."""
    out: dict[str, Any] = {}
    for key, kind in allowed.items():
        if key not in body or body[key] is None:
            continue
        value = body[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise InputError(f"'{key}' must be a {kind.__name__}")
        out[key] = value
    return out


class ControlServer:
    """Serves :class:`Commands` on 127.0.0.1 in a background thread."""

    def __init__(self, commands: Commands, *, state_dir: Path, port: int = 0,
                 bus: EventBus | None = None, request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.token = secrets.token_urlsafe(32)
        self.closing = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port),
                                         _handler(commands, self.token, bus, self.closing, request_timeout_s))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.info_path = StateLayout(Path(state_dir)).control_json
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="control", daemon=True)

    def start(self) -> "ControlServer":
        write_json(self.info_path, {"url": f"http://127.0.0.1:{self.port}", "token": self.token,
                                    "pid": os.getpid()})
        self._thread.start()
        log.info("control API on http://127.0.0.1:%d (token in %s)", self.port, self.info_path)
        return self

    def close(self) -> None:
        self.closing.set()  # ends open event streams
        self.httpd.shutdown()
        self.httpd.server_close()
        try:
            if json.loads(self.info_path.read_text()).get("pid") == os.getpid():
                self.info_path.unlink()
        except (OSError, ValueError):
            pass


def _reply_fields(body: dict[str, Any]) -> tuple[str, str, list[str] | None]:
    """``POST /reply``'s body: message_id, text, and optional routes."""
    message_id, text, routes = body.get("message_id"), body.get("text"), body.get("routes")
    if not isinstance(message_id, str) or not message_id.strip() or len(message_id) > 200:
        raise InputError("'message_id' must be the id of a chat event (a non-empty string)")
    if not isinstance(text, str) or not text.strip():
        raise InputError("'text' must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise InputError(f"'text' longer than {MAX_TEXT} characters")
    if routes is not None and (not isinstance(routes, list)
                               or not all(r in ("chat", "voice", "caption") for r in routes) or not routes):
        raise InputError("'routes' must be a list of chat, voice, caption")
    return message_id, text, routes


@dataclass
class ControlClient:
    """What the CLI's status/stop/say/show/chat use."""

    url: str
    token: str
    timeout: float = 30.0

    @classmethod
    def from_state(cls, state_dir: Path) -> "ControlClient":
        path = StateLayout(Path(state_dir)).control_json
        try:
            info = json.loads(path.read_text())
        except FileNotFoundError:
            raise ApplianceError(f"the appliance is not running ({path} not found)",
                                 fix="start it with `appliance live` or `appliance up`") from None
        except (OSError, ValueError) as exc:
            raise ApplianceError(f"{path}: unreadable ({exc})") from None
        return cls(url=str(info["url"]), token=str(info["token"]))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        session = requests.Session()
        session.trust_env = False
        try:
            response = session.request(method, self.url + path, json=body, timeout=self.timeout,
                                       headers={"Authorization": f"Bearer {self.token}"})
        except requests.RequestException:
            raise ApplianceError(f"the appliance's control API at {self.url} does not answer",
                                 fix="is `appliance live` running? see its log") from None
        try:
            data = response.json() if "json" in response.headers.get("Content-Type", "") else response.text
        except ValueError:
            data = response.text
        if response.status_code >= 400:
            error = data.get("error") if isinstance(data, dict) else data
            raise ApplianceError(f"{method} {path}: {error}")
        return data


def prometheus(metrics: dict[str, tuple[str, float | int | None]], labels: dict[str, str] | None = None) -> str:
    """Prometheus text: ``{name: (help, value)}``, all gauges/counters under one prefix."""
    lines = []
    for name, (help_text, value) in metrics.items():
        if value is None:
            continue
        kind = "counter" if name.endswith("_total") else "gauge"
        full = f"retake_appliance_{name}"
        lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
        label = ""
        if labels and name in labels:
            label = labels[name]
        lines.append(f"{full}{label} {float(value):g}")
    return "\n".join(lines) + "\n"
