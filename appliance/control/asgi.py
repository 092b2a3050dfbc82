"""Serve one ASGI application (the MCP SDK's streamable HTTP app) from the stdlib control server.

Why not move the control API to Starlette + uvicorn (both come with ``mcp``)? The control API's
request bounds are the hardening issue's and are tested: a ``Content-Length`` that is not one
decimal is refused (400), a chunked body is refused (411), a body over 16 KiB is refused (413)
before it is read, and every connection has a socket timeout, so a client that trickles a
request (slowloris) is dropped after 10 s. uvicorn has no timeout covering the reception of a
request (``timeout_keep_alive`` only covers idle time between requests and is reset by every
byte received: uvicorn issue #157 and the slowloris fix xorbitsai/inference#5213, which had to
wrap uvicorn's protocol class), accepts chunked bodies, and ASGI middleware runs only once the
request is parsed, so those bounds would have to be rebuilt inside uvicorn's protocol classes.
The event feed (``/events``) is a blocking generator on its own thread today, which the
threaded server serves as is.

So the stdlib server stays, and :class:`AsgiBridge` hands a request that has passed every
bound and the bearer check to the ASGI app on one asyncio loop in a background thread, and
streams the app's answer back (the MCP transport may answer with SSE). The app is built, and
its lifespan (the SDK's session manager) started, on the first request: importing the MCP SDK
costs about a second of CPU, which must not sit on the way to the initial thumbnail. The
lifespan is stopped with the bridge.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("appliance.asgi")

Write = Callable[[bytes], None]
Start = Callable[[int, list[tuple[str, str]]], None]


class AsgiBridge:
    """Runs the app ``make_app()`` returns on its own event loop thread; :meth:`handle` serves one
    request from a server thread (blocking until the app's response is complete). The app is
    made, and started, by the first request."""

    def __init__(self, make_app: Callable[[], Any], *, name: str = "asgi", timeout_s: float = 300.0) -> None:
        self.make_app, self.timeout_s = make_app, timeout_s
        self.app: Any = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._lifespan_done: asyncio.Future[None] | None = None
        self._shutdown: asyncio.Queue[dict[str, Any]] | None = None
        self._ready = threading.Lock()

    # -- lifespan --

    def start(self) -> AsgiBridge:
        self._thread.start()
        return self

    def _app(self) -> Any:
        """The app, made and its lifespan started by the first caller (the others wait)."""
        with self._ready:
            if self.app is None:
                app = self.make_app()
                self.app = app
                asyncio.run_coroutine_threadsafe(self._startup(), self.loop).result(30)
            return self.app

    async def _startup(self) -> None:
        started: asyncio.Future[None] = self.loop.create_future()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._shutdown = queue
        await queue.put({"type": "lifespan.startup"})

        async def send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete" and not started.done():
                started.set_result(None)
            elif kind == "lifespan.startup.failed" and not started.done():
                started.set_exception(RuntimeError(message.get("message", "ASGI startup failed")))

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan_done = asyncio.ensure_future(self.app(scope, queue.get, send))
        await started

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        if self.app is None:  # never asked: nothing was started
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            return

        async def stop() -> None:
            if self._shutdown is not None and self._lifespan_done is not None:
                await self._shutdown.put({"type": "lifespan.shutdown"})
                try:
                    await asyncio.wait_for(self._lifespan_done, 5)
                except (TimeoutError, Exception):
                    log.debug("ASGI lifespan did not end cleanly", exc_info=True)
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        except Exception:
            log.debug("ASGI shutdown", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    # -- one request --

    def handle(self, *, method: str, path: str, query: str, headers: Iterable[tuple[str, str]],
               body: bytes, client: tuple[str, int], server: tuple[str, int],
               start: Start, write: Write) -> None:
        """Serve one HTTP request: ``start(status, headers)`` once, then ``write(chunk)`` for each
        piece of the body (called from the loop thread through a blocking hand-off, in order)."""
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": query.encode(), "root_path": "",
                 "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                 "client": client, "server": server, "state": {}}
        sent_body = False
        disconnected = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
                await asyncio.to_thread(start, int(message["status"]), pairs)
            elif kind == "http.response.body":
                chunk = message.get("body", b"")
                try:
                    if chunk:
                        await asyncio.to_thread(write, chunk)
                except OSError:  # the client went away: tell the app
                    disconnected.set()
                    raise
                if not message.get("more_body", False):
                    disconnected.set()

        app = self._app()
        future = asyncio.run_coroutine_threadsafe(app(scope, receive, send), self.loop)
        try:
            future.result(self.timeout_s)
        finally:
            if not future.done():
                future.cancel()


def serve(handler: Any, bridge: AsgiBridge, body: bytes) -> None:
    """Answer the request ``handler`` (a :class:`http.server.BaseHTTPRequestHandler` whose body,
    ``body``, was already read within the server's bounds) with ``bridge``'s app. A response
    without a Content-Length (a stream) ends the connection when it ends."""
    path, _, query = handler.path.partition("?")
    state = {"length": False}

    def start(status: int, headers: list[tuple[str, str]]) -> None:
        handler.send_response(status)
        for key, value in headers:
            if key.lower() in ("connection", "transfer-encoding", "server", "date"):
                continue
            state["length"] = state["length"] or key.lower() == "content-length"
            handler.send_header(key, value)
        if not state["length"]:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()

    def write(chunk: bytes) -> None:
        handler.wfile.write(chunk)
        handler.wfile.flush()

    bridge.handle(method=handler.command, path=path, query=query, headers=list(handler.headers.items()),
                  body=body, client=handler.client_address[:2], server=handler.server.server_address[:2],
                  start=start, write=write)
