"""The sandbox's aiohttp application: agent REST API, public API, Socket.IO and ``/_sandbox/``.

* ``/api/v1/agent/*`` — the agent endpoints of the reference, Bearer-authenticated (401
  ``{"error": ...}`` when the header is missing or the token unknown). Errors are always
  ``{"error": "..."}`` with the reference's status codes (400, 401, 404, 409, 500).
* ``/api/v1/{users,sessions,tokens,trades,chat}/*`` — the public API (see ``public.py``).
* ``/skill.json`` and ``/skill.md`` — the skill document; its version is settable.
* ``/socket.io/`` — python-socketio ``AsyncServer``: ``joinRoom``/``leaveRoom {roomId}`` with no
  acknowledgement (settings ``socket_ack``, ``joined_room_event``); the server emits ``message``
  (``{streamer_id}``), ``tip_received``, ``session_started``, ``user_followed``
  (``live_{streamer_id}``), ``pinned`` (``{streamer_id}/{session_id}``), ``newtrade`` (``trades``,
  ``trades_{tokenAddress}``) and ``rawtrade`` (``trades``), with the documented fields (setting
  ``socket_extras`` adds the observed ones). See ``platform.py``.
* ``/_sandbox/*`` — the control surface for tests and rehearsals: no auth, loopback clients
  only (403 otherwise). Not part of retake.tv.

``GET /agent/stream/comments`` (documented shape) answers ``{"comments": [...]}`` with the
``limit`` newest messages older than ``beforeId``, **newest first** with times to the second
(``comments_order: oldest_first`` turns the page round); the setting ``comments_shape`` serves
the other shapes seen (``platform.COMMENT_SHAPES``), and ``register_shape``, ``rtmp_shape`` and
``field_drift`` the other spellings of those answers. The streamer's own ``chat/send`` messages
are included. ``POST /_sandbox/comments`` takes ``{text, username}`` or ``{text, anonymous:
true, wallet?}`` (a viewer without a name); ``POST /_sandbox/warning {text}`` makes a platform
notice (a shutdown warning, type ``warning``); ``POST /_sandbox/pin {message_id, pinned}`` pins
a message of the session; ``GET /_sandbox/sockets`` lists the Socket.IO clients with their rooms
and what they asked for.
(All decisions: ``platform.py`` docstring.)

Fault injection (``POST /_sandbox/faults``, a JSON object; ``GET`` lists the active rules with
their ``hits``, ``GET ?all=1`` finished ones too, ``DELETE`` clears). Common fields: ``kind``
(default ``"status"``), ``paths`` (a path prefix, ``"agent/stream"`` or ``"/skill.json"``; default
every agent endpoint), ``count`` (requests or publishes to hit) and/or ``seconds`` (how long the
rule lives); neither means ``count: 1``. The first active rule whose prefix matches wins.

* ``status`` — answer ``{"error": ...}`` with ``status`` (400-599, default 500) instead of the
  endpoint: ``{"status": 500, "seconds": 4}`` is a 5xx burst.
* ``ratelimit`` — 429 with ``Retry-After: <retry_after>`` (seconds, default 1).
* ``reset`` — the endpoint runs for real; its status and headers go out with the full
  ``Content-Length``, then half the body, then the connection is dropped.
* ``slow`` — the endpoint runs; headers at once, the body in 10 pieces over ``delay_s`` seconds
  (default 5; make it longer than the client's read timeout to see a timeout).
* ``truncate`` — the endpoint runs; a complete response whose JSON body is cut in half.
* ``publish_refused`` — the RTMP ingest's ``on_publish`` refuses the next ``count`` publishes (or
  all publishes for ``seconds``), whatever the key; ``paths`` does not apply.

Each rule lists as ``{kind, status, paths, remaining, seconds_left, hits, active}`` (plus
``retry_after`` or ``delay_s``); a request that met a fault is logged with ``"fault": true`` and
``"fault_kind"``, a refused publish as an ``RTMP publish`` entry with status 403 and the same fields.

The request log records method, path, query (secrets redacted), status, duration and whether an
Authorization header was present — never a token's value. Agent endpoints and ``/skill.*`` are
logged, plus ``/_sandbox/redirect`` and ``/_sandbox/echo-headers`` (client-facing test
endpoints); the rest of the control surface and Socket.IO polling are not.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import socketio
from aiohttp import web

from ..core.images import ImageError, inspect_image
from . import public, viewers
from .platform import MAX_TEXT, MAX_THUMBNAIL_BYTES, Agent, ApiError, Platform, iso

log = logging.getLogger(__name__)

API = "/api/v1"
CLIENT_MAX_SIZE = 8 * 1024 * 1024
MAX_LOG = 2000
MAX_FAULTS = 20
MAX_SOCKET_LOG = 500
SECRET_PARAMS = ("access_token", "token", "key", "authorization", "password", "secret")
LOGGED_CONTROL = ("/_sandbox/redirect", "/_sandbox/echo-headers")
SKILL_FILE = Path(__file__).with_name("skill.md")

# Per-request extras for the log entry (image info, injected fault, token-in-body flag).
LOG_EXTRA: Any = web.RequestKey("log_extra", dict) if hasattr(web, "RequestKey") else "log_extra"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


def is_loopback(remote: str | None) -> bool:
    return remote is not None and (remote.startswith("127.") or remote in ("::1", "::ffff:127.0.0.1"))


# ----- request log and faults ---------------------------------------------------------------
class RequestLog:
    """Ordered, bounded request log (a ring buffer) with optional listeners (the CLI printer)."""

    def __init__(self, maxlen: int = MAX_LOG) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.seq = 0
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        entry = {"seq": self.seq, "time": iso(time.time()), **entry}
        self.entries.append(entry)
        for listener in self.listeners:
            listener(entry)
        return entry

    def since(self, seq: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["seq"] > seq]


class SocketLog:
    """What Socket.IO clients asked for (joinRoom, leaveRoom, message), bounded, for tests and
    ``GET /_sandbox/sockets``; kept apart from the HTTP request log."""

    def __init__(self, maxlen: int = MAX_SOCKET_LOG) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.seq = 0

    def add(self, sid: str, event: str, room: str | None) -> None:
        self.seq += 1
        self.entries.append({"seq": self.seq, "time": iso(time.time()), "sid": sid, "event": event, "room": room})


FAULT_KINDS = ("status", "ratelimit", "reset", "slow", "truncate", "publish_refused")
BROKEN_BODY_KINDS = ("reset", "slow", "truncate")  # the endpoint runs; its answer arrives broken
SLOW_PIECES = 10


@dataclass
class Fault:
    """One injected fault (see the module docstring for the kinds)."""

    kind: str
    status: int
    prefix: str
    remaining: int | None = None
    until: float | None = None
    retry_after: float = 1.0
    delay_s: float = 5.0
    hits: int = 0

    def active(self) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return self.until is None or time.time() < self.until

    def hit(self) -> Fault:
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1
        return self

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind, "status": self.status,
            "paths": None if self.kind == "publish_refused" else self.prefix, "remaining": self.remaining,
            "seconds_left": round(max(0.0, self.until - time.time()), 1) if self.until else None, "hits": self.hits}
        if self.kind == "ratelimit":
            data["retry_after"] = self.retry_after
        if self.kind == "slow":
            data["delay_s"] = self.delay_s
        return data


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, f"{key} must be a number between {low:g} and {high:g}")
    return float(value)


@dataclass
class Faults:
    rules: list[Fault] = field(default_factory=list)

    def add(self, body: dict[str, Any]) -> Fault:
        kind = body.get("kind", "status") or "status"
        if kind not in FAULT_KINDS:
            raise ApiError(400, f"kind must be one of {', '.join(FAULT_KINDS)}")
        status = body.get("status", 500) if kind == "status" else 429 if kind == "ratelimit" else 0
        if kind == "status" and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ApiError(400, "status must be an HTTP error status (400-599)")
        count, seconds = body.get("count"), body.get("seconds")
        if count is None and seconds is None:
            count = 1
        if count is not None and (not isinstance(count, int) or not 0 < count <= 10_000):
            raise ApiError(400, "count must be a positive integer")
        if seconds is not None and (not isinstance(seconds, (int, float)) or not 0 < seconds <= 3600):
            raise ApiError(400, "seconds must be between 0 and 3600")
        fault = Fault(kind, status, normalize_prefix(body.get("paths")), count,
                      time.time() + seconds if seconds is not None else None,
                      retry_after=_number(body, "retry_after", 1.0, 0, 3600),
                      delay_s=_number(body, "delay_s", 5.0, 0.01, 600))
        while len(self.rules) >= MAX_FAULTS:  # bounded: the oldest finished rule goes first
            done = [r for r in self.rules if not r.active()]
            self.rules.remove(done[0] if done else self.rules[0])
        self.rules.append(fault)
        return fault

    def take(self, path: str) -> Fault | None:
        """The first active HTTP fault for ``path`` (counted as hit)."""
        for rule in self.rules:
            if rule.kind != "publish_refused" and rule.active() and path.startswith(rule.prefix):
                return rule.hit()
        return None

    def take_publish(self) -> Fault | None:
        """An active ``publish_refused`` fault (counted as hit), for the ingest's on_publish."""
        for rule in self.rules:
            if rule.kind == "publish_refused" and rule.active():
                return rule.hit()
        return None

    def public(self, include_done: bool = False) -> list[dict[str, Any]]:
        return [{**r.public(), "active": r.active()} for r in self.rules if include_done or r.active()]


def normalize_prefix(paths: Any) -> str:
    """``None`` -> every agent endpoint; ``"agent/stream"`` or ``"/api/v1/agent/stream"`` both work."""
    if paths is None or paths == "":
        return f"{API}/agent/"
    if not isinstance(paths, str):
        raise ApiError(400, "paths must be a path prefix string")
    return paths if paths.startswith("/") else f"{API}/{paths}"


def redact_query(request: web.Request) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in SECRET_PARAMS else v[:200]) for k, v in request.query.items()}


# ----- the application ------------------------------------------------------------------------
@dataclass
class SandboxApp:
    """Everything the handlers share. ``recordings`` is filled in by the runner when RTMP is on."""

    platform: Platform
    log: RequestLog = field(default_factory=RequestLog)
    faults: Faults = field(default_factory=Faults)
    recordings: Callable[[], dict[str, Any]] = lambda: {"recordings": [], "record_dir": None}
    sio: socketio.AsyncServer | None = None
    socket_log: SocketLog = field(default_factory=SocketLog)

    # --- helpers ---
    def authenticate(self, request: web.Request) -> Agent:
        header = request.headers.get("Authorization", "")
        if not header:
            raise ApiError(401, "Missing access token")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Invalid authorization header")
        agent = self.platform.by_token(token.strip())
        if agent is None:
            raise ApiError(401, "Invalid access token")
        return agent

    @staticmethod
    async def read_json(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Invalid JSON body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "JSON body must be an object")
        if "access_token" in body:
            request[LOG_EXTRA]["body_access_token"] = True
        return body


def create_app(sandbox: SandboxApp) -> web.Application:
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[_middleware(sandbox)])
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", max_http_buffer_size=64 * 1024)
    sio.attach(app, socketio_path="socket.io")
    _socket_handlers(sio, sandbox)
    sandbox.sio = sio

    async def emit(event: str, data: dict[str, Any], room: str) -> None:
        await sio.emit(event, data, to=room)

    sandbox.platform.emit = emit
    _agent_routes(app, sandbox)
    _public_routes(app, sandbox.platform)
    _control_routes(app, sandbox)
    _skill_routes(app, sandbox.platform)
    return app


def _add(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register ``path`` with and without a trailing slash (the reference mixes both)."""
    app.router.add_route(method, path, handler)
    other = path[:-1] if path.endswith("/") else path + "/"
    app.router.add_route(method, other, handler)


def _middleware(sb: SandboxApp) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sandbox/"):
            if not is_loopback(request.remote):
                return json_error(403, "The sandbox control surface answers loopback clients only")
            if path not in LOGGED_CONTROL:
                return await _guarded(request, handler)
        elif path.startswith("/socket.io"):
            return await handler(request)
        request[LOG_EXTRA] = {}
        started = time.monotonic()
        fault = sb.faults.take(path)
        if fault is None:
            response: web.StreamResponse = await _guarded(request, handler)
        else:
            request[LOG_EXTRA].update(fault=True, fault_kind=fault.kind)
            response = await _injected(request, handler, fault)
        sb.log.add({"method": request.method, "path": path, "query": redact_query(request),
                    "status": response.status, "auth": "Authorization" in request.headers,
                    "ms": round((time.monotonic() - started) * 1000, 1), **request[LOG_EXTRA]})
        return response

    return middleware


async def _injected(request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
    """The answer a fault makes of this request."""
    if fault.kind == "status":
        return json_error(fault.status, f"Injected fault (sandbox): HTTP {fault.status}")
    if fault.kind == "ratelimit":
        limited = json_error(429, "Too many requests (sandbox fault)")
        limited.headers["Retry-After"] = f"{fault.retry_after:g}"
        return limited
    real = await _guarded(request, handler)  # the platform did the work; the answer is what breaks
    body = real.body if isinstance(real, web.Response) and isinstance(real.body, bytes) else b"{}"
    part = body[: max(1, len(body) // 2)]
    if fault.kind == "truncate":
        return web.Response(status=real.status, body=part, content_type="application/json")
    response = web.StreamResponse(status=real.status, headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    try:
        await response.prepare(request)
        if fault.kind == "reset":
            await response.write(part)
            if request.transport is not None:
                request.transport.close()  # flushes what was written, then drops the connection
            return response
        bounds = [round(k * len(body) / SLOW_PIECES) for k in range(SLOW_PIECES + 1)]
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):  # the first piece at once, the last after delay_s
            if k:
                await asyncio.sleep(fault.delay_s / (SLOW_PIECES - 1))
            await response.write(body[a:b])
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client gave up (a timeout): that is what the fault is for
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.message)
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "Request body too large")
    except web.HTTPRedirection:
        raise
    except web.HTTPException as exc:
        return json_error(exc.status, exc.reason or "error")
    except Exception:
        log.exception("sandbox handler failed: %s %s", request.method, request.path)
        return json_error(500, "Internal server error")


# ----- agent endpoints ----------------------------------------------------------------------------
def _agent_routes(app: web.Application, sb: SandboxApp) -> None:
    platform = sb.platform

    def authed(fn: Callable[[web.Request, Agent], Awaitable[Any]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            agent = sb.authenticate(request)
            result = await fn(request, agent)
            return result if isinstance(result, web.StreamResponse) else json_response(result)
        return handler

    async def register(request: web.Request) -> web.Response:
        return json_response(platform.register(await sb.read_json(request)))

    async def prepare_verify(request: web.Request, agent: Agent) -> Any:
        return platform.prepare_verify(agent)

    async def verify(request: web.Request, agent: Agent) -> Any:
        return platform.verify(agent, await sb.read_json(request))

    async def verification_status(request: web.Request, agent: Agent) -> Any:
        return {"verified": agent.verified}

    async def rtmp(request: web.Request, agent: Agent) -> Any:
        return platform.new_rtmp_key(agent)

    async def start(request: web.Request, agent: Agent) -> Any:
        return await platform.stream_start(agent)

    async def status(request: web.Request, agent: Agent) -> Any:
        return platform.stream_status(agent)

    async def stop(request: web.Request, agent: Agent) -> Any:
        return platform.stream_stop(agent)

    async def thumbnail(request: web.Request, agent: Agent) -> Any:
        platform.require_session(agent)
        data = await _read_image_field(request)
        try:
            info = inspect_image(data).as_dict()
        except ImageError as exc:
            request[LOG_EXTRA]["image"] = {"bytes": len(data), "format": "invalid"}
            raise ApiError(400, f"Invalid image: {exc}") from None
        request[LOG_EXTRA]["image"] = info
        return platform.set_thumbnail(agent, data, info)

    async def chat_send(request: web.Request, agent: Agent) -> Any:
        return await platform.agent_chat(agent, await sb.read_json(request))

    async def comments(request: web.Request, agent: Agent) -> Any:
        return platform.comments(dict(request.query))

    _add(app, "POST", f"{API}/agent/register", register)
    for method, path, fn in (
        ("POST", "prepare-verify", prepare_verify), ("POST", "verify", verify),
        ("GET", "verification-status", verification_status), ("POST", "rtmp", rtmp),
        ("POST", "stream/start", start), ("GET", "stream/status", status), ("POST", "stream/stop", stop),
        ("POST", "update-thumbnail", thumbnail), ("POST", "stream/chat/send", chat_send),
        ("GET", "stream/comments", comments),
    ):
        _add(app, method, f"{API}/agent/{path}", authed(fn))


async def _read_image_field(request: web.Request) -> bytes:
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "Expected multipart/form-data with an 'image' field")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if getattr(part, "name", None) != "image":
                continue
            data = bytearray()
            while chunk := await part.read_chunk(65536):  # type: ignore[union-attr]
                data += chunk
                if len(data) > MAX_THUMBNAIL_BYTES:
                    raise ApiError(400, f"Image too large (max {MAX_THUMBNAIL_BYTES} bytes)")
            return bytes(data)
    except (ValueError, AssertionError) as exc:
        raise ApiError(400, f"Malformed multipart body: {exc}") from None
    raise ApiError(400, "No image provided (multipart field 'image')")


# ----- public endpoints -----------------------------------------------------------------------------
def _public_routes(app: web.Application, platform: Platform) -> None:
    def get(path: str, fn: Callable[[web.Request], Any]) -> None:
        async def handler(request: web.Request) -> web.Response:
            return json_response(fn(request))
        _add(app, "GET", f"{API}/{path}", handler)

    m = lambda r, k: r.match_info[k]  # noqa: E731
    q = lambda r: dict(r.query)  # noqa: E731
    get("users/search/{q}", lambda r: public.search(platform, m(r, "q")))
    get("users/live/", lambda r: public.live(platform))
    get("users/newest/", lambda r: public.newest(platform))
    get("users/metadata/{id}", lambda r: public.metadata(platform, m(r, "id")))
    get("users/streamer/{id}", lambda r: public.streamer(platform, m(r, "id")))
    get("sessions/active/", lambda r: public.active_sessions(platform))
    get("sessions/active/{id}/", lambda r: public.active_session(platform, m(r, "id")))
    get("sessions/recorded/", lambda r: public.recorded(platform))
    get("sessions/recorded/{id}/", lambda r: public.recorded(platform, m(r, "id")))
    get("sessions/scheduled/", lambda r: public.scheduled(platform))
    get("sessions/scheduled/{id}/", lambda r: public.scheduled(platform, m(r, "id")))
    get("sessions/{id}/join/", lambda r: public.join(platform, m(r, "id")))
    get("tokens/top/", lambda r: public.tokens_top(platform))
    get("tokens/trending/", lambda r: public.tokens_trending(platform))
    get("tokens/{address}/stats", lambda r: public.token_stats(platform, m(r, "address")))
    get("trades/recent/", lambda r: public.trades_recent(platform, q(r)))
    get("trades/recent/{address}/", lambda r: public.trades_recent(platform, q(r), m(r, "address")))
    get("trades/top-volume/", lambda r: public.trades_top(platform, q(r), "volume"))
    get("trades/top-count/", lambda r: public.trades_top(platform, q(r), "count"))
    get("chat/", lambda r: public.chat(platform, q(r)))
    get("chat/top-tippers", lambda r: public.top_tippers(platform, q(r)))


def _skill_routes(app: web.Application, platform: Platform) -> None:
    text = SKILL_FILE.read_text() if SKILL_FILE.exists() else "# retake.tv agent skill (version 2.1.2)\n"

    async def skill_json(request: web.Request) -> web.Response:
        version = platform.settings.skill_version
        return json_response({"name": "retake", "version": version,
                              "skill_url": f"{platform.origin}/skill.md",
                              "description": "retake.tv agent skill (sandbox copy)"})

    async def skill_md(request: web.Request) -> web.Response:
        body = text.replace("2.1.2", platform.settings.skill_version)
        return web.Response(text=body, content_type="text/markdown", charset="utf-8")

    app.router.add_get("/skill.json", skill_json)
    app.router.add_get("/skill.md", skill_md)


# ----- socket.io --------------------------------------------------------------------------------------
def _room(data: Any) -> str | None:
    room = data.get("roomId") if isinstance(data, dict) else data
    return room if isinstance(room, str) and 0 < len(room) <= 200 else None


def _socket_handlers(sio: socketio.AsyncServer, sb: SandboxApp) -> None:
    """``joinRoom``/``leaveRoom {roomId}`` as the reference has them: no acknowledgement, no
    answer at all (a client that asks for one waits in vain) unless ``socket_ack`` is on."""
    settings = sb.platform.settings

    def answer(data: dict[str, Any]) -> Any:
        # python-socketio sends an ACK packet for whatever a handler returns, unless it returns
        # the server's own ``not_handled`` marker (what it returns for an event nobody handles)
        return data if settings.socket_ack else sio.not_handled

    @sio.on("joinRoom")
    async def join_room(sid: str, data: Any = None) -> Any:
        room = _room(data)
        sb.socket_log.add(sid, "joinRoom", room)
        if room is None:
            return answer({"ok": False, "error": "roomId is required"})
        await sio.enter_room(sid, room)
        if settings.joined_room_event:
            await sio.emit("joinedRoom", {"roomId": room}, to=sid)
        return answer({"ok": True, "roomId": room})

    @sio.on("leaveRoom")
    async def leave_room(sid: str, data: Any = None) -> Any:
        room = _room(data)
        sb.socket_log.add(sid, "leaveRoom", room)
        if room is None:
            return answer({"ok": False, "error": "roomId is required"})
        await sio.leave_room(sid, room)
        return answer({"ok": True, "roomId": room})

    @sio.on("message")
    async def message(sid: str, data: Any = None) -> Any:
        # Sending over the socket needs a Privy JWT, which agents do not have: refused (an answer
        # only for a client that asks for one: the reference documents none).
        sb.socket_log.add(sid, "message", None)
        return {"ok": False, "error": "sender_token (Privy JWT) required; agents chat via /agent/stream/chat/send"}

    @sio.on("disconnect")
    async def disconnect(sid: str, *args: Any) -> None:
        sb.socket_log.add(sid, "disconnect", None)


def socket_clients(sio: socketio.AsyncServer | None) -> list[dict[str, Any]]:
    """Each connected client and the rooms it is in (its own sid-room left out)."""
    if sio is None:
        return []
    return [{"sid": sid, "rooms": sorted(r for r in sio.rooms(sid) if r != sid)}
            for sid, _eio in sio.manager.get_participants("/", None)]


# ----- control surface ------------------------------------------------------------------------------
def _control_routes(app: web.Application, sb: SandboxApp) -> None:
    platform = sb.platform
    r = app.router

    async def requests_get(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0") or 0)
        return json_response({"requests": sb.log.since(since), "last_seq": sb.log.seq})

    async def requests_clear(request: web.Request) -> web.Response:
        sb.log.entries.clear()
        return json_response({"cleared": True, "last_seq": sb.log.seq})

    async def comments(request: web.Request) -> web.Response:
        body = await SandboxApp.read_json(_with_extra(request))
        anonymous = bool(body.get("anonymous"))
        text, username = body.get("text"), "" if anonymous else body.get("username", "viewer")
        wallet = body.get("wallet")
        if not isinstance(text, str) or not isinstance(username, str) or not (anonymous or username.strip()):
            raise ApiError(400, "text and username must be strings (or anonymous: true)")
        if wallet is not None and not (isinstance(wallet, str) and 0 < len(wallet) <= 100):
            raise ApiError(400, "wallet must be a short string")
        if len(text) > MAX_TEXT:
            raise ApiError(400, f"text too long (max {MAX_TEXT} characters)")
        streamer = platform.the_agent(body.get("userDbId"))
        return json_response(await viewers.post_comment(platform, streamer, username[:100], text, wallet=wallet),
                             status=201)

    async def events(request: web.Request) -> web.Response:
        body = await SandboxApp.read_json(_with_extra(request))
        streamer = platform.the_agent(body.get("userDbId"))
        username = str(body.get("username", "pixelpilgrim"))[:100]
        kind = body.get("type")
        if kind == "follow":
            result = await viewers.follow(platform, streamer, username)
        elif kind == "tip":
            result = await viewers.tip(platform, streamer, username, float(body.get("amount", 0.1)))
        elif kind == "trade":
            result = await viewers.trade(platform, streamer, username, float(body.get("amount", 25.0)),
                                         str(body.get("action", "buy")))
        else:
            raise ApiError(400, "type must be follow, tip or trade")
        return json_response(result, status=201)

    async def warning(request: web.Request) -> web.Response:
        body = await SandboxApp.read_json(_with_extra(request))
        text = body.get("text", "This stream may be shut down for low effort: improve it now.")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise ApiError(400, f"text must be a non-empty string (max {MAX_TEXT} characters)")
        event = await platform.warn(platform.the_agent(body.get("userDbId")), text)
        return json_response(event.public(), status=201)

    async def pin(request: web.Request) -> web.Response:
        body = await SandboxApp.read_json(_with_extra(request))
        message_id, pinned = body.get("message_id"), body.get("pinned", True)
        if not isinstance(message_id, str) or not message_id or not isinstance(pinned, bool):
            raise ApiError(400, "message_id (a chat _id or chat_event_id) and pinned (true/false) are required")
        return json_response(await platform.pin(platform.the_agent(body.get("userDbId")), message_id, pinned))

    async def sockets(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0") or 0)
        return json_response({"clients": socket_clients(sb.sio),
                              "events": [e for e in sb.socket_log.entries if e["seq"] > since]})

    async def faults_post(request: web.Request) -> web.Response:
        body = await SandboxApp.read_json(_with_extra(request))
        if body.get("status") in (0, None) and body.get("clear"):
            sb.faults.rules.clear()
        else:
            sb.faults.add(body)
        return json_response({"faults": sb.faults.public()})

    async def faults_get(request: web.Request) -> web.Response:
        return json_response({"faults": sb.faults.public(include_done=request.query.get("all") in ("1", "true"))})

    async def faults_clear(request: web.Request) -> web.Response:
        sb.faults.rules.clear()
        return json_response({"faults": []})

    async def settings_post(request: web.Request) -> web.Response:
        platform.settings.update(await SandboxApp.read_json(_with_extra(request)))
        return await settings_get(request)

    async def settings_get(request: web.Request) -> web.Response:
        return json_response(platform.snapshot()["settings"])

    async def recordings(request: web.Request) -> web.Response:
        return json_response(sb.recordings())

    async def state(request: web.Request) -> web.Response:
        return json_response({**platform.snapshot(), "faults": sb.faults.public(), "requests_logged": sb.log.seq})

    async def redirect(request: web.Request) -> web.Response:
        target = request.query.get("to", "")
        code = int(request.query.get("code", "302") or 302)
        if urlsplit(target).scheme not in ("http", "https") or code not in (301, 302, 303, 307, 308):
            raise ApiError(400, "to must be an http(s) URL and code one of 301, 302, 303, 307, 308")
        await request.read()
        return web.Response(status=code, headers={"Location": target}, text=f"redirecting to {target}\n")

    async def echo_headers(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        await request.read()
        return json_response({"method": request.method, "path": request.path, "headers": headers,
                              "authorization": "present" if "Authorization" in request.headers else "absent"})

    async def thumbnail(request: web.Request) -> web.Response:
        agent = platform.agent(request.match_info["id"])
        if agent.thumbnail is None or agent.thumbnail_info is None:
            raise ApiError(404, "No thumbnail")
        kind = "image/png" if agent.thumbnail_info["format"] == "png" else "image/jpeg"
        return web.Response(body=agent.thumbnail, content_type=kind)

    async def on_publish(request: web.Request) -> web.Response:
        form = await request.post()
        refused = sb.faults.take_publish() is not None
        ok = await platform.on_publish(str(form.get("name", "")), refused_by_fault=refused)
        return web.Response(status=200 if ok else 403, text="ok" if ok else "refused")

    async def on_publish_done(request: web.Request) -> web.Response:
        form = await request.post()
        await platform.on_publish_done(str(form.get("name", "")))
        return web.Response(text="ok")

    async def on_record_done(request: web.Request) -> web.Response:
        form = await request.post()
        platform.on_record_done(str(form.get("name", "")), str(form.get("path", "")))
        return web.Response(text="ok")

    r.add_get("/_sandbox/requests", requests_get)
    r.add_delete("/_sandbox/requests", requests_clear)
    r.add_post("/_sandbox/comments", comments)
    r.add_post("/_sandbox/events", events)
    r.add_post("/_sandbox/warning", warning)
    r.add_post("/_sandbox/pin", pin)
    r.add_get("/_sandbox/sockets", sockets)
    r.add_get("/_sandbox/faults", faults_get)
    r.add_post("/_sandbox/faults", faults_post)
    r.add_delete("/_sandbox/faults", faults_clear)
    r.add_get("/_sandbox/settings", settings_get)
    r.add_post("/_sandbox/settings", settings_post)
    r.add_get("/_sandbox/recordings", recordings)
    r.add_get("/_sandbox/state", state)
    r.add_route("*", "/_sandbox/redirect", redirect)
    r.add_route("*", "/_sandbox/echo-headers", echo_headers)
    r.add_get("/_sandbox/thumbnails/{id}", thumbnail)
    r.add_post("/_sandbox/rtmp/on_publish", on_publish)
    r.add_post("/_sandbox/rtmp/on_publish_done", on_publish_done)
    r.add_post("/_sandbox/rtmp/on_record_done", on_record_done)


def _with_extra(request: web.Request) -> web.Request:
    """Control-surface requests are not logged, but read_json writes to ``log_extra``."""
    if LOG_EXTRA not in request:
        request[LOG_EXTRA] = {}
    return request
