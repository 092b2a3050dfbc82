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
    POST /go_live  {"wait_s": 60}      start the stream when standing by (control.autostart false)
    GET  /chat?since=ID&limit=N        chat from the event feed, with viewer names and ids
    GET  /viewers?limit=N              the viewers the agent remembers
    POST /terminal {"text": "ls", "keys": ["C-c"], "lines": 40}   the on-screen terminal
    GET  /screenshot                   the display now (JPEG, control.preview_width wide)
    POST|GET|DELETE /mcp               MCP streamable HTTP (appliance/control/mcp.py)
    POST /console/ticket               a one-time console login URL (appliance console)
    GET  /console, /console/login?ticket=..., /console/state, /console/static/*   the console

Every request's Host header must name a loopback host (DNS rebinding). The console's pages
and its requests authenticate with a session cookie instead of the token (state-changing ones
also with the session's CSRF token): see appliance/control/console/. /mcp and
/console/ticket take the bearer token only.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import requests

from ..core.errors import ApplianceError, InputError, NotFoundError
from ..core.files import StateLayout, write_json
from . import console
from .events import EventBus, parse_last_event_id, sse_stream
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import render_values

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
    def voice(self, *, flush: bool = False, interrupt: bool = False, volume: float | None = None,
              mute: bool | None = None) -> dict[str, Any]: ...
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
    if len({v.strip() for v in values}) != 1 or not _DIGITS.fullmatch(values[0].strip()):
        return None, 400, "Content-Length must be one non-negative integer"
    digits = values[0].strip().lstrip("0") or "0"
    length = int(digits) if len(digits) <= 9 else MAX_BODY + 1
    if length > MAX_BODY:
        return None, 413, f"body larger than {MAX_BODY} bytes"
    return length, 200, ""


@dataclass
class Extras:
    """What the console and MCP add to a control server (each optional)."""

    sessions: console.Sessions | None = None
    history: console.History | None = None
    bridge: Any = None                     # control/asgi.AsgiBridge serving the MCP app at /mcp
    notifications: Path | None = None      # the notifications log the console shows
    preview_fps: float = 1.0


def _handler(commands: Commands, token: str, bus: EventBus | None, closing: threading.Event,
             request_timeout_s: float, extras: Extras) -> type[BaseHTTPRequestHandler]:
    streams = threading.BoundedSemaphore(MAX_EVENT_STREAMS)
    # routes of parts a Commands may not have (a held appliance, a test's fake): 404 without them
    voice, reply = (getattr(commands, name, None) for name in ("voice", "reply"))
    posts: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
        path: (key, getattr(commands, name)) for path, key, name in (
            ("/say", "text", "say"), ("/show", "text", "show"), ("/chat", "message", "chat"),
            ("/scene", "name", "scene")) if hasattr(commands, name)}
    # options some POST routes take besides their text (name -> type); anything else is ignored
    options: dict[str, dict[str, type]] = {"/say": {"wait": bool, "priority": str}}

    class Handler(BaseHTTPRequestHandler):
        server_version = "retake-appliance"
        sys_version = ""
        # StreamRequestHandler puts this on the socket: a request that stalls (headers, body)
        # ends the connection instead of holding a thread forever
        timeout = request_timeout_s

        def log_message(self, fmt: str, *args: Any) -> None:  # our format, no headers
            log.debug("control %s %s", self.command, self.path.split("?", 1)[0])

        def _send(self, status: int, body: Any, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            if isinstance(body, bytes):
                data = body
            else:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        # -- who is asking --

        def _host_ok(self) -> bool:
            """The DNS-rebinding check: the Host header names a loopback host (every route)."""
            if console.host_allowed(self.headers.get("Host")):
                return True
            self.close_connection = True
            self._send(421, {"error": "Host must be 127.0.0.1 or localhost (the control API is local only)"})
            return False

        def _bearer(self) -> bool:
            given = self.headers.get("Authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

        def _session(self) -> console.Session | None:
            return extras.sessions.get(self.headers.get("Cookie")) if extras.sessions else None

        def _authorized(self, *, changes: bool = False, bearer_only: bool = False) -> bool:
            """The bearer token, or a console session (with its CSRF token and a same-origin
            Origin for a request that changes something)."""
            if self._bearer():
                return True
            session = None if bearer_only else self._session()
            if session is None:
                self._send(401, {"error": "missing or wrong bearer token (see <state>/control.json)"
                                 + ("" if bearer_only else "; or log in with `appliance console`")})
                return False
            if changes and not (console.Sessions.csrf_ok(session, self.headers.get("X-CSRF-Token"))
                                and console.origin_allowed(self.headers.get("Origin"), self.headers.get("Host"))):
                self._send(403, {"error": "missing or wrong CSRF token (reload the console)"})
                return False
            return True

        def _query(self) -> dict[str, str]:
            return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

        # -- GET --

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if not self._host_ok():
                return None
            if path == "/health":
                health = commands.health()
                return self._send(200 if health.get("alive") else 503, health)
            if path == "/ready":
                ok, why = commands.ready()
                return self._send(200 if ok else 503, {"ready": ok, "reason": why})
            if path == "/console/login":
                return self._login()
            if path == "/mcp" and extras.bridge is not None:
                return self._mcp(b"")
            if not self._authorized():
                return None
            try:
                return self._get(path)
            except (InputError, ValueError) as exc:
                return self._send(400, {"error": getattr(exc, "message", str(exc))})
            except ApplianceError as exc:
                return self._send(503, {"error": str(exc)})

        def _get(self, path: str) -> None:
            query = self._query()
            if path == "/status":
                return self._send(200, commands.status())
            if path == "/metrics":
                return self._send(200, commands.metrics(), METRICS_TYPE)
            if path == "/chat" and hasattr(commands, "read_chat"):
                since = query.get("since")
                return self._send(200, commands.read_chat(int(since) if since else None,
                                                          int(query.get("limit", 50))))
            if path == "/viewers" and hasattr(commands, "viewers"):
                return self._send(200, commands.viewers(int(query.get("limit", 20))))
            if path == "/screenshot" and hasattr(commands, "screenshot"):
                return self._send(200, commands.screenshot(), "image/jpeg")
            if path in ("/console", "/console/") and extras.sessions is not None:
                session = self._session()
                if session is None:  # the bearer alone does not open the page: it needs a session
                    return self._send(401, {"error": "log in with the URL `appliance console` prints"})
                return self._send(200, console.page(session.csrf), "text/html; charset=utf-8",
                                  {"Content-Security-Policy": CONSOLE_CSP, "Referrer-Policy": "no-referrer",
                                   "X-Frame-Options": "DENY"})
            if path.startswith("/console/static/") and extras.sessions is not None:
                found = console.static_file(path[len("/console/static/"):])
                if found is None:
                    return self._send(404, {"error": "no such file"})
                return self._send(200, found[0], found[1])
            if path == "/console/state" and extras.sessions is not None:
                return self._send(200, self._console_state())
            if path == "/events" and bus is not None:
                return self._events()
            return self._send(404, {"error": f"no endpoint GET {path}"})

        def _events(self) -> None:
            """Server-Sent Events until the client goes or the server closes."""
            query = parse_qs(urlsplit(self.path).query)
            last = parse_last_event_id(self.headers.get("Last-Event-ID")
                                       or (query.get("last_event_id") or [""])[0])
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

        def _login(self) -> None:
            session = extras.sessions.redeem(self._query().get("ticket")) if extras.sessions else None
            if session is None:
                return self._send(403, {"error": "this login URL is used up or expired: run `appliance console` again"})
            return self._send(303, {"login": "ok"}, headers={
                "Set-Cookie": extras.sessions.cookie(session),  # type: ignore[union-attr]
                "Location": "/console", "Referrer-Policy": "no-referrer"})

        def _console_state(self) -> dict[str, Any]:
            scenes, current = commands.scenes() if hasattr(commands, "scenes") else ([], None)
            return {"status": commands.status(), "preview_fps": extras.preview_fps,
                    "history": extras.history.snapshot() if extras.history else {"samples": [], "errors": []},
                    "notifications": console.notifications_tail(extras.notifications) if extras.notifications else [],
                    "speech": commands.speech() if hasattr(commands, "speech") else {"speaking": None, "pending": 0},
                    "scenes": scenes, "scene": current}

        # -- POST / DELETE --

        def _read_body(self) -> bytes | None:
            """The request's body within the bounds (None: answered or the connection is spent)."""
            length, status, why = body_length(self.headers)
            if length is None:
                self.close_connection = True  # the body (if any) is not read: the connection is spent
                self._send(status, {"error": why})
                return None
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                self.close_connection = True
                return None
            if len(raw) < length:  # the client closed early
                self.close_connection = True
                return None
            return raw

        def _mcp(self, raw: bytes | None) -> None:
            if not self._authorized(bearer_only=True):
                return None
            if raw is None:
                return None
            return serve_asgi(self, extras.bridge, raw)

        def do_DELETE(self) -> None:
            if not self._host_ok():
                return None
            if self.path.split("?", 1)[0] == "/mcp" and extras.bridge is not None:
                return self._mcp(self._read_body())
            return self._send(404, {"error": f"no endpoint DELETE {self.path.split('?', 1)[0]}"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if not self._host_ok():
                return None
            if path == "/mcp" and extras.bridge is not None:
                if not self._authorized(bearer_only=True):
                    return None
                raw = self._read_body()
                return None if raw is None else serve_asgi(self, extras.bridge, raw)
            if not self._authorized(changes=True, bearer_only=path == "/console/ticket"):
                return None
            raw = self._read_body()
            if raw is None:
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
                if path == "/console/ticket" and extras.sessions is not None:
                    return self._send(200, {"path": f"/console/login?ticket={extras.sessions.ticket()}",
                                            "expires_s": console.TICKET_TTL_S})
                if path == "/go_live" and hasattr(commands, "go_live"):
                    wait_s = _typed(body, {"wait_s": float}).get("wait_s", 0.0)
                    return self._send(200, commands.go_live(wait_s))
                if path == "/terminal" and hasattr(commands, "terminal"):
                    return self._send(200, commands.terminal(**_terminal_fields(body)))
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


# the console's page: its own scripts, styles and images only (viewer text is never markup there)
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def serve_asgi(handler: BaseHTTPRequestHandler, bridge: Any, raw: bytes) -> None:
    from .asgi import serve
    serve(handler, bridge, raw)


def _terminal_fields(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /terminal``'s body: text (one line), enter, keys (names), lines."""
    fields = _typed(body, {"text": str, "enter": bool, "keys": list, "lines": int})
    if "keys" in fields and not all(isinstance(k, str) for k in fields["keys"]):
        raise InputError("'keys' must be a list of key names")
    return fields


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
                 bus: EventBus | None = None, request_timeout_s: float = REQUEST_TIMEOUT_S,
                 session_hours: float | None = None, mcp: bool = False, notifications: Path | None = None,
                 preview_fps: float = 1.0) -> None:
        """``bus``: serve ``/events``; ``session_hours``: serve the console (its logins last this
        long); ``mcp``: serve the MCP tools at /mcp (``commands`` must then be an
        :class:`appliance.control.mcp.Operator`)."""
        self.token = secrets.token_urlsafe(32)
        self.closing = threading.Event()
        self.extras = Extras(notifications=notifications, preview_fps=preview_fps)
        if session_hours is not None:
            self.extras.sessions = console.Sessions(lifetime_s=session_hours * 3600)
            self.extras.history = console.History(commands.status)
        if mcp:
            from .asgi import AsgiBridge
            from .mcp import build_server
            self.extras.bridge = AsgiBridge(  # the MCP SDK is loaded by the first /mcp request
                lambda: build_server(commands).streamable_http_app(  # type: ignore[arg-type]
                    json_response=True, stateless_http=True),
                name="mcp")
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(
            commands, self.token, bus, self.closing, request_timeout_s, self.extras))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.info_path = StateLayout(Path(state_dir)).control_json
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="control", daemon=True)

    def start(self) -> ControlServer:
        write_json(self.info_path, {"url": f"http://127.0.0.1:{self.port}", "token": self.token,
                                    "pid": os.getpid()})
        if self.extras.bridge is not None:
            self.extras.bridge.start()
        if self.extras.history is not None:
            self.extras.history.start()
        self._thread.start()
        log.info("control API on http://127.0.0.1:%d (token in %s)", self.port, self.info_path)
        return self

    def close(self) -> None:
        self.closing.set()  # ends open event streams
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.extras.history is not None:
            self.extras.history.stop()
        if self.extras.bridge is not None:
            self.extras.bridge.close()
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
    def from_state(cls, state_dir: Path) -> ControlClient:
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
    """Prometheus text of ``{name: (help, value)}`` under the ``retake_appliance_`` prefix, with
    ``labels`` as ``{name: '{key="value"}'}`` (what the held appliance reports; the live one
    uses :class:`appliance.control.metrics.Telemetry`)."""
    parsed = {name: dict(re.findall(r'(\w+)="([^"]*)"', text)) for name, text in (labels or {}).items()}
    return render_values(metrics, parsed).decode()
