"""Serve one ASGI application (the MCP SDK's streamable HTTP app) from the control server's
aiohttp loop: the request has already passed every bound (Host, bearer token, body size, the
whole-request deadline: :mod:`appliance.control.guard`), its body is read, and the app runs on
the same event loop, its answer streamed back as it comes (the MCP transport may answer with
SSE). The app's lifespan is not driven from here: the server enters the SDK's session manager
itself (``session_manager.run()``) for as long as it serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
AsgiApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
HOP_BY_HOP = frozenset({"connection", "transfer-encoding", "keep-alive", "server", "date"})


async def serve(app: AsgiApp, request: web.Request, body: bytes) -> web.StreamResponse:
    """The app's answer to ``request`` (whose ``body`` was read within the server's bounds)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": request.method, "scheme": "http", "path": request.path, "raw_path": request.raw_path.encode(),
        "query_string": request.query_string.encode(), "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
        "client": tuple(peer[:2]) if peer else None, "server": ("127.0.0.1", 0), "state": {}}
    response: web.StreamResponse | None = None
    sent_body = False
    finished = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()  # the app listens for a disconnect: it comes once the answer is done
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            response = web.StreamResponse(status=int(message["status"]))
            for key, value in message.get("headers", []):
                name = key.decode("latin-1")
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value.decode("latin-1"))
            await response.prepare(request)
        elif message["type"] == "http.response.body" and response is not None:
            chunk = message.get("body", b"")
            if chunk:
                await response.write(chunk)
            if not message.get("more_body", False):
                await response.write_eof()
                finished.set()

    try:
        await app(scope, receive, send)
    finally:
        finished.set()
    if response is None:
        return web.json_response({"error": "the MCP app gave no answer"}, status=500)
    return response
