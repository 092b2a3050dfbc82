"""The local control API: how the CLI, the console and an outside agent (an LLM runtime, MCP)
drive the appliance.

HTTP on 127.0.0.1 only (aiohttp, on its own event loop thread). A bearer token is generated at
start into ``<state>/control.json`` (mode 600, with the URL: :mod:`appliance.control.where`);
every endpoint but ``/health`` and ``/ready`` requires it. ``openapi.yaml`` at the repository
root documents the endpoints.

    GET  /health   200 while alive; 503 when the LIVE loop is stuck (>60 s)   (no token)
    GET  /ready    200 when live and the encoder is healthy, else 503     (no token)
    GET  /status   JSON: state, uptime, viewers, last error, ...
    GET  /metrics  Prometheus text
    POST /say      {"text": "...", "wait": false, "priority": "operator"}
                   speech into the sink, encoder keeps running; 202 + utterance id at once
    GET  /speech                       what is being said, how many lines wait
    POST /scene    {"name": "brb"}     switch the on-screen scene
    GET  /scene                        the scene on screen, the scenes there are, its text
    POST /voice    {"flush": true, "interrupt": true, "volume": 80, "mute": false}
    POST /show     {"text": "..."}     text on screen
    POST /direction {"text": "..."}    the human's direction for the show (the topic)
    POST /chat     {"message": "..."}  a line in the agent's own chat
    POST /chat_to  {"name": "...", "message": "..."}  a line in another streamer's chat
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
    POST /console/logout               end the console session

Every request's Host header must name a loopback host (DNS rebinding). The console's pages
and its requests authenticate with a session cookie instead of the token (state-changing ones
also with the session's CSRF token): see appliance/control/console/. /mcp and
/console/ticket take the bearer token only.

Under abuse (:mod:`appliance.control.guard`): a whole-request deadline, a connection cap with
fair refusal, a 1024-deep backlog, no spinning on EMFILE, one log line per bad request. A
command runs on a thread pool (probes on their own two threads, so a slow command never delays
``/health``); an event stream's reader that stops reading is dropped by a write deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ..core.errors import ApplianceError, InputError, NotFoundError
from ..core.outgoing import Refused
from . import console, where
from .events import EventBus, parse_last_event_id, sse_stream
from .guard import Connections, Noise, default_cap, http_logger, quiet_loop_errors
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .protocols import Commands

log = logging.getLogger("appliance.control")
T = TypeVar("T")
MAX_BODY = 16_384
MAX_TEXT = 2000
MAX_EVENT_STREAMS = 8
REQUEST_TIMEOUT_S = 10.0   # connect (or the previous answer) -> a complete request, headers and body
WRITE_TIMEOUT_S = 10.0     # one write to a client; an event stream's reader that stops reading is dropped
STREAM_MIN_AGE_S = 30.0    # a full house of event streams: the oldest one past this age makes room
STREAM_SNDBUF = 16_384     # an event stream's socket buffer: a reader that stops reading shows soon
BACKLOG = 1024             # the kernel's queue of connections not yet accepted
ACCEPT_BATCH = 64          # connections accepted per turn of the loop (asyncio takes the backlog for this)
COMMAND_THREADS = 8
PROBE_THREADS = 2
SERVER_HEADER = "retake-appliance"
# the console's page: its own scripts, styles and images only (viewer text is never markup there)
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
VOICE_OPTIONS: dict[str, type] = {"flush": bool, "interrupt": bool, "volume": float, "mute": bool}
SAY_OPTIONS: dict[str, type] = {"wait": bool, "priority": str}
RAW = web.RequestKey("raw", bytes)  # the request's body as received (within MAX_BODY)
BODY = web.RequestKey("body", dict)  # ... parsed: a JSON object (the routes that change something)


@dataclass
class _Stream:
    """One open event stream (``/events``)."""

    started: float
    session: console.Session | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class ControlServer:
    """Serves :class:`~appliance.control.protocols.Commands` on 127.0.0.1 from a background
    thread. The port is bound at construction (``port`` 0: a free one); :meth:`start` serves
    and publishes the token, :meth:`close` stops and withdraws it."""

    def __init__(self, commands: Commands, *, state_dir: Path, port: int = 0, listen: str = "127.0.0.1",
                 bus: EventBus | None = None,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, write_timeout_s: float = WRITE_TIMEOUT_S,
                 session_hours: float | None = None, mcp: bool = False, mcp_terminal: bool = True,
                 mcp_instructions: str | None = None, notifications: Path | None = None,
                 preview_fps: float = 1.0, max_connections: int | None = None,
                 max_event_streams: int = MAX_EVENT_STREAMS, stream_min_age_s: float = STREAM_MIN_AGE_S) -> None:
        """``bus``: serve ``/events``; ``session_hours``: serve the console (its logins last this
        long); ``mcp``: serve the MCP tools at /mcp (``mcp_terminal``: with the terminal tool);
        ``listen``: 127.0.0.1, or 0.0.0.0 in a container whose port the engine publishes on the
        host's loopback (:class:`~appliance.control.settings.ControlConfig`)."""
        self.commands, self.bus, self.state_dir = commands, bus, Path(state_dir)
        self.token = secrets.token_urlsafe(32)
        self.request_timeout_s, self.write_timeout_s = request_timeout_s, write_timeout_s
        self.notifications, self.preview_fps = notifications, preview_fps
        self.max_connections = max_connections or default_cap()
        self.max_event_streams, self.stream_min_age_s = max_event_streams, stream_min_age_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((listen, port))
        except OSError:
            self.sock.close()
            raise
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.sessions = (console.Sessions(lifetime_s=session_hours * 3600, name=console.cookie_name(self.port))
                         if session_hours is not None else None)
        self.history = console.History(commands.status) if session_hours is not None else None
        # /mcp: the MCP SDK (about a second of CPU to load) is loaded by the first request, never
        # on the way to the initial thumbnail (:meth:`_mcp_app`)
        self.mcp_enabled, self.mcp_terminal, self.mcp_instructions = mcp, mcp_terminal, mcp_instructions
        self.mcp: Any = None
        self.mcp_app: Any = None
        self._mcp_lock = asyncio.Lock()
        self._mcp_done = asyncio.Event()
        self._mcp_session: asyncio.Task[None] | None = None
        self.loop = asyncio.new_event_loop()
        self.noise = Noise(log)
        self.connections: Connections | None = None
        self.streams: list[_Stream] = []
        self._tick = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._commands_pool = concurrent.futures.ThreadPoolExecutor(COMMAND_THREADS, thread_name_prefix="control")
        self._probes_pool = concurrent.futures.ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="control-probe")
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._stopped = asyncio.Event()

    # -- life --

    def start(self) -> ControlServer:
        started = concurrent.futures.Future[None]()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(started), self.loop)
        started.result(30)
        info = where.publish(self.state_dir, url=self.url, token=self.token)
        if self.history is not None:
            self.history.start()
        log.info("control API on %s (token in %s)", self.url, info)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        quiet_loop_errors(self.loop, self.noise)
        self.loop.run_forever()

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        try:
            app = self._app()
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                                         keepalive_timeout=self.request_timeout_s, lingering_time=1.0,
                                         max_line_size=8190, max_field_size=8190, max_headers=64,
                                         logger=http_logger())
            await self._runner.setup()
            if self._runner.server is None:
                raise RuntimeError("aiohttp's runner has no server after setup")
            self.connections = Connections(self._runner.server, self.loop, cap=self.max_connections,
                                           request_timeout_s=self.request_timeout_s, noise=self.noise)
            # asyncio accepts up to `backlog` connections in one turn, each a descriptor before any
            # evicted one is closed: a small batch keeps a flood within the descriptor limit, and
            # listen() again keeps the kernel's queue deep (Linux updates it in place)
            self._listener = await self.loop.create_server(self.connections, sock=self.sock, backlog=ACCEPT_BATCH)
            self.sock.listen(BACKLOG)
            if self.bus is not None:
                self._unsubscribe = self.bus.subscribe(self._published)
        except BaseException as exc:
            started.set_exception(exc)
            raise
        started.set_result(None)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.history is not None:
            self.history.stop()
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(15)
            except Exception:
                log.debug("control API shutdown", exc_info=True)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        self._commands_pool.shutdown(wait=False, cancel_futures=True)
        self._probes_pool.shutdown(wait=False, cancel_futures=True)
        self.sock.close()
        where.withdraw(self.state_dir)

    async def _shutdown(self) -> None:
        self._stopped.set()  # open event streams end
        self._wake()
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the event bus, woken from the publisher's thread --

    def _published(self, _event: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: the server is gone
            pass

    def _wake(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    async def _wait_for_events(self, seconds: float) -> None:
        tick = self._tick
        try:
            await asyncio.wait_for(tick.wait(), seconds)
        except TimeoutError:
            pass

    # -- commands on threads --

    async def _call(self, fn: Callable[..., T], *args: Any, probe: bool = False, **kwargs: Any) -> T:
        pool = self._probes_pool if probe else self._commands_pool
        return await self.loop.run_in_executor(pool, partial(fn, *args, **kwargs))

    # -- the app --

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard, self._errors], client_max_size=MAX_BODY)
        app.on_response_prepare.append(_common_headers)
        get, post = app.router.add_get, app.router.add_post
        get("/health", self._health, allow_head=False)
        get("/ready", self._ready, allow_head=False)
        get("/status", self._bearer_or_session(lambda r: self._call(self.commands.status)))
        get("/metrics", self._bearer_or_session(self._metrics))
        get("/speech", self._bearer_or_session(lambda r: self._call(self.commands.speech)))
        get("/scene", self._bearer_or_session(lambda r: self._call(self.commands.scene_state)))
        get("/chat", self._bearer_or_session(self._read_chat))
        get("/viewers", self._bearer_or_session(
            lambda r: self._call(self.commands.viewers, _int(r.query.get("limit"), 20, "limit"))))
        get("/screenshot", self._bearer_or_session(self._screenshot))
        post("/say", self._changes(self._say))
        for path, key, command in (("/show", "text", self.commands.show), ("/chat", "message", self.commands.chat),
                                   ("/scene", "name", self.commands.scene)):
            post(path, self._changes(self._text_command(key, command)))
        post("/direction", self._changes(lambda r: self._call(
            self.commands.direction, _text(r[BODY], "text"), **_typed(r[BODY], {"source": str}))))
        post("/stop", self._changes(self._stop))
        post("/reply", self._changes(lambda r: self._call(self.commands.reply, *_reply_fields(r[BODY]))))
        post("/voice", self._changes(lambda r: self._call(self.commands.voice, **_typed(r[BODY], VOICE_OPTIONS))))
        post("/go_live", self._changes(
            lambda r: self._call(self.commands.go_live, _typed(r[BODY], {"wait_s": float}).get("wait_s", 0.0))))
        post("/terminal", self._changes(lambda r: self._call(self.commands.terminal, **_terminal_fields(r[BODY]))))
        post("/chat_to", self._changes(
            lambda r: self._call(self.commands.chat_to, _text(r[BODY], "name"), _text(r[BODY], "message"))))
        if self.bus is not None:
            get("/events", self._events)
        if self.sessions is not None:
            get("/console", self._console_page)
            get("/console/", self._console_page)
            get("/console/login", self._login)
            get("/console/state", self._bearer_or_session(self._console_state))
            get("/console/static/{name}", self._bearer_or_session(self._static))
            post("/console/ticket", self._bearer_only(self._ticket))
            post("/console/logout", self._logout)
        if self.mcp_enabled:
            app.router.add_route("*", "/mcp", self._mcp)

            async def mcp_session(_app: web.Application) -> AsyncIterator[None]:
                yield
                self._mcp_done.set()  # the SDK's session manager (if it was started) ends with the server
                if self._mcp_session is not None:
                    await self._mcp_session
            app.cleanup_ctx.append(mcp_session)
        return app

    # -- middlewares: the request's bounds, then errors as answers --

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        """Host check, body bounds, the body read inside the connection's deadline; then the
        connection counts as being answered until the handler returns."""
        log.debug("control %s %s", request.method, request.path)
        if not console.host_allowed(request.headers.get("Host")):
            return _closing(421, "Host must be 127.0.0.1 or localhost (the control API is local only)")
        if request.headers.get("Transfer-Encoding"):
            return _closing(411, "Transfer-Encoding is not supported: send Content-Length")
        if (request.content_length or 0) > MAX_BODY:
            return _closing(413, f"body larger than {MAX_BODY} bytes")
        try:
            request[RAW] = await request.read() if request.can_read_body else b""
        except (ConnectionError, asyncio.CancelledError, web.HTTPException):
            return _closing(408, "the request's body did not arrive in time")
        connections = self.connections
        if connections is not None:
            connections.begin(request.protocol)
        try:
            return await handler(request)
        finally:
            if connections is not None:
                connections.end(request.protocol)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            what = f"no endpoint {request.method} {request.path}" if exc.status in (404, 405) else exc.reason
            return _json(exc.status, {"error": what})
        except NotFoundError as exc:
            return _json(404, {"error": exc.message})
        except Refused as exc:
            return _json(422, {"error": exc.message})
        except InputError as exc:
            return _json(400, {"error": exc.message})
        except ApplianceError as exc:
            return _json(503, {"error": str(exc)})
        except ValueError as exc:
            return _json(400, {"error": f"bad request: {exc}"})
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("control %s %s failed", request.method, request.path)
            return _json(500, {"error": "internal error (see the appliance's log)"})

    # -- who is asking --

    def _bearer(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    def _session(self, request: web.Request) -> console.Session | None:
        return self.sessions.get(request.headers.get("Cookie")) if self.sessions else None

    def _refused(self, bearer_only: bool) -> web.Response:
        return _json(401, {"error": "missing or wrong bearer token (see <state>/control.json)"
                                    + ("" if bearer_only else "; or log in with `appliance console`")})

    def _bearer_only(self, handler: Callable[[web.Request], Awaitable[Any]]
                     ) -> Callable[..., Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            if not self._bearer(request):
                return self._refused(True)
            return _answer(await handler(request))
        return route

    def _bearer_or_session(self, handler: Callable[[web.Request], Awaitable[Any]]
                           ) -> Callable[..., Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            if not (self._bearer(request) or self._session(request)):
                return self._refused(False)
            return _answer(await handler(request))
        return route

    def _changes(self, handler: Callable[[web.Request], Awaitable[Any]]
                 ) -> Callable[..., Awaitable[web.StreamResponse]]:
        """A request that changes something: the bearer token, or a console session with its
        CSRF token and a same-origin ``Origin``; the body must be a JSON object."""
        async def route(request: web.Request) -> web.StreamResponse:
            if not self._bearer(request):
                session = self._session(request)
                if session is None:
                    return self._refused(False)
                if not (console.Sessions.csrf_ok(session, request.headers.get("X-CSRF-Token"))
                        and console.origin_allowed(request.headers.get("Origin"), request.headers.get("Host"))):
                    return _json(403, {"error": "missing or wrong CSRF token (reload the console)"})
            try:
                body = json.loads(request[RAW] or b"{}")
            except ValueError as exc:
                return _json(400, {"error": f"bad JSON: {exc}"})
            if not isinstance(body, dict):
                return _json(400, {"error": "bad JSON: body must be a JSON object"})
            request[BODY] = body
            return _answer(await handler(request))
        return route

    # -- routes --

    async def _health(self, request: web.Request) -> web.StreamResponse:
        health = await self._call(self.commands.health, probe=True)
        return _json(200 if health.get("alive") else 503, health)

    async def _ready(self, request: web.Request) -> web.StreamResponse:
        ok, why = await self._call(self.commands.ready, probe=True)
        return _json(200 if ok else 503, {"ready": ok, "reason": why})

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=(await self._call(self.commands.metrics)).encode(),
                            headers={"Content-Type": METRICS_TYPE})

    async def _read_chat(self, request: web.Request) -> Any:
        since = request.query.get("since")
        return await self._call(self.commands.read_chat, _int(since, None, "since") if since else None,
                                _int(request.query.get("limit"), 50, "limit"))

    async def _screenshot(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=await self._call(self.commands.screenshot), content_type="image/jpeg")

    async def _say(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        result = await self._call(self.commands.say, _text(body, "text"), **_typed(body, SAY_OPTIONS))
        return _json(202 if result.get("queued") else 200, result)

    def _text_command(self, key: str, command: Callable[[str], Any]) -> Callable[[web.Request], Awaitable[Any]]:
        async def run(request: web.Request) -> Any:
            return await self._call(command, _text(request[BODY], key))
        return run

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        return _json(202, await self._call(self.commands.stop))

    async def _mcp(self, request: web.Request) -> web.StreamResponse:
        if not self._bearer(request):
            return self._refused(True)
        from .asgi import serve
        return await serve(await self._mcp_app(), request, request[RAW])

    async def _mcp_app(self) -> Any:
        """The MCP app, made (in a worker thread: the loop keeps serving) and its session manager
        started by the first /mcp request; the others wait for it."""
        async with self._mcp_lock:
            if self.mcp_app is None:
                def build() -> tuple[Any, Any]:
                    from .mcp import build_server
                    server = build_server(self.commands, with_terminal=self.mcp_terminal,
                                          instructions=self.mcp_instructions)
                    return server, server.streamable_http_app(json_response=True, stateless_http=True)
                self.mcp, app = await self.loop.run_in_executor(self._commands_pool, build)
                running = asyncio.Event()

                async def session() -> None:  # one task enters and leaves the SDK's task group
                    async with self.mcp.session_manager.run():
                        running.set()
                        await self._mcp_done.wait()
                self._mcp_session = self.loop.create_task(session())
                await running.wait()
                self.mcp_app = app
            return self.mcp_app

    # -- the console --

    async def _console_page(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is None:  # the bearer alone does not open the page: it needs a session
            return _json(401, {"error": "log in with the URL `appliance console` prints"})
        return web.Response(body=console.page(session.csrf), headers={
            "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CONSOLE_CSP,
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        found = console.static_file(request.match_info["name"])
        if found is None:
            return _json(404, {"error": "no such file"})
        return web.Response(body=found[0], headers={"Content-Type": found[1]})

    async def _login(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.redeem(request.query.get("ticket")) if self.sessions else None
        if session is None or self.sessions is None:
            return _json(403, {"error": "this login URL is used up or expired: run `appliance console` again"})
        return _json(303, {"login": "ok"}, headers={"Set-Cookie": self.sessions.cookie(session),
                                                    "Location": "/console", "Referrer-Policy": "no-referrer"})

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is None or self.sessions is None:
            return self._refused(False)
        if not (console.Sessions.csrf_ok(session, request.headers.get("X-CSRF-Token"))
                and console.origin_allowed(request.headers.get("Origin"), request.headers.get("Host"))):
            return _json(403, {"error": "missing or wrong CSRF token (reload the console)"})
        self.sessions.revoke(session)
        self._wake()  # its event stream notices within a second
        return _json(200, {"logged_out": True}, headers={"Set-Cookie": self.sessions.expired_cookie()})

    async def _ticket(self, request: web.Request) -> Any:
        if self.sessions is None:
            raise NotFoundError("no console in this control API")
        return {"path": f"/console/login?ticket={self.sessions.ticket()}", "expires_s": console.TICKET_TTL_S}

    async def _console_state(self, request: web.Request) -> Any:
        def read() -> dict[str, Any]:
            try:
                scene = self.commands.scene_state()
            except ApplianceError:
                scene = {"scenes": [], "scene": None}
            return {"status": self.commands.status(), "preview_fps": self.preview_fps,
                    "history": self.history.snapshot() if self.history else {"samples": [], "errors": []},
                    "notifications": console.notifications_tail(self.notifications) if self.notifications else [],
                    "speech": self.commands.speech(), "scenes": scene["scenes"], "scene": scene["scene"]}
        return await self._call(read)

    # -- /events --

    async def _events(self, request: web.Request) -> web.StreamResponse:
        session = None
        if not self._bearer(request):
            session = self._session(request)
            if session is None:
                return self._refused(False)
        if len(self.streams) >= self.max_event_streams and not self._evict_stream():
            return _json(503, {"error": f"at most {self.max_event_streams} event streams at once"},
                         headers={"Retry-After": "2"})
        if self.bus is None:
            raise NotFoundError("no event feed in this control API")
        last = parse_last_event_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
        kinds = [k for part in request.query.getall("kinds", []) for k in part.split(",") if k] or None
        stream = _Stream(time.monotonic(), session)
        self.streams.append(stream)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.force_close()
        transport = request.transport
        try:
            if transport is not None:  # a reader that stops reading fills a small buffer soon
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            await response.prepare(request)

            def open_() -> bool:
                return not (self._stopped.is_set() or stream.closed.is_set()
                            or (session is not None and self.sessions is not None
                                and not self.sessions.alive(session)))
            stalled = False
            async for chunk in sse_stream(self.bus, last, wait=self._wait_for_events, open_=open_, kinds=kinds):
                await response.write(chunk)
                if not await self._flushed(request, time.monotonic() + self.write_timeout_s):
                    self.noise(logging.INFO, "control: dropped an event stream whose reader stopped reading")
                    stalled = True
                    break
            if not stalled:  # closing, revoked, made room: end the stream properly
                await asyncio.wait_for(response.write_eof(), self.write_timeout_s)
        except (ConnectionError, asyncio.CancelledError, TimeoutError):
            pass
        finally:
            self.streams.remove(stream)
            request.protocol.force_close()
        return response

    async def _flushed(self, request: web.Request, deadline: float) -> bool:
        """Wait until what was written left for the client (False past ``deadline``)."""
        transport = request.transport
        while transport is not None and not transport.is_closing() and transport.get_write_buffer_size() > 0:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return transport is not None and not transport.is_closing()

    def _evict_stream(self) -> bool:
        """A full house: the oldest stream past ``stream_min_age_s`` makes room (it reconnects with
        Last-Event-ID and misses nothing); none that old: the newcomer is refused."""
        now = time.monotonic()
        for stream in self.streams:
            if now - stream.started >= self.stream_min_age_s and not stream.closed.is_set():
                stream.closed.set()
                self._wake()
                return True
        return False


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers=headers)


def _closing(status: int, error: str) -> web.Response:
    """An answer after which the connection closes (its request was not read to the end)."""
    response = _json(status, {"error": error})
    response.force_close()
    return response


def _answer(result: Any) -> web.StreamResponse:
    return result if isinstance(result, web.StreamResponse) else _json(200, result)


def _int(value: str | None, default: int | None, name: str) -> Any:
    if value is None:
        return default
    if not value.lstrip("-").isdigit() or len(value) > 18:
        raise InputError(f"'{name}' must be an integer")
    return int(value)


def _text(body: dict[str, Any], key: str) -> str:
    """``body[key]``: a non-empty string of at most MAX_TEXT characters (InputError otherwise)."""
    text = body.get(key)
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"'{key}' must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise InputError(f"'{key}' longer than {MAX_TEXT} characters")
    return text


def _terminal_fields(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /terminal``'s body: text (one line), enter, keys (names), lines."""
    fields = _typed(body, {"text": str, "enter": bool, "keys": list, "lines": int})
    if "keys" in fields and not all(isinstance(k, str) for k in fields["keys"]):
        raise InputError("'keys' must be a list of key names")
    return fields


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


def _reply_fields(body: dict[str, Any]) -> tuple[str, str, list[str] | None]:
    """``POST /reply``'s body: message_id, text, and optional routes."""
    message_id, text, routes = body.get("message_id"), body.get("text"), body.get("routes")
    if not isinstance(message_id, str) or not message_id.strip() or len(message_id) > 200:
        raise InputError("'message_id' must be the id of a chat event (a non-empty string)")
    text = _text(body, "text")
    if routes is not None and (not isinstance(routes, list)
                               or not all(r in ("chat", "voice", "caption") for r in routes) or not routes):
        raise InputError("'routes' must be a list of chat, voice, caption")
    return message_id, text, routes
