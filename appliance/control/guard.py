"""What keeps the control API answering under abuse, below the routes (aiohttp's low-level
server is the protocol these wrap):

* **A whole-request deadline.** Each connection has ``request_timeout_s`` from its opening (or
  from the end of its previous answer) to a complete request, headers *and* body; a client that
  trickles bytes is closed when it runs out, whatever it sends meanwhile. While a request is
  handled the deadline rests (the route bounds its own time); it is armed again for the next
  request, so it also ends idle keep-alive connections.
* **A connection cap with fair refusal.** At most ``cap`` connections are open. A newcomer past
  it closes the *oldest connection that is not being answered* (a slow or idle client: one that
  holds a slot without a complete request), so squatters cannot lock out ``/health``; only when
  every open connection is being answered (event streams, long commands) is the newcomer
  refused, with ``503`` and ``Retry-After``, never a silent hang.
* **EMFILE** (descriptors exhausted anyway): asyncio's accept loop stops accepting for a second
  and tries again (no spinning); :func:`quiet_loop_errors` makes that one log line, not a
  traceback. The cap defaults to half the process's descriptor limit, so the control API alone
  never gets there.
* **One log line** per dropped or malformed request (:class:`OneLine` on aiohttp's server
  logger), rate-limited, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("appliance.control")

MAX_CONNECTIONS = 512
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
           b"Cache-Control: no-store\r\nConnection: close\r\nContent-Length: 65\r\n\r\n"
           b'{"error": "the control API is at its connection cap: retry soon"}')


def default_cap() -> int:
    """Half the soft descriptor limit (the rest is the appliance's own), at most MAX_CONNECTIONS."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft // 2))


class Noise:
    """One log line per event, at most ``per_minute`` a minute; the rest are counted and said
    in one line when the minute is over."""

    def __init__(self, logger: logging.Logger, *, per_minute: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.per_minute, self.clock = logger, per_minute, clock
        self._window = clock()
        self._said = self._held = 0

    def __call__(self, level: int, message: str, *args: Any) -> None:
        now = self.clock()
        if now - self._window >= 60.0:
            if self._held:
                self.logger.log(level, "control: %d more like that in the last minute (not logged)", self._held)
            self._window, self._said, self._held = now, 0, 0
        if self._said < self.per_minute:
            self._said += 1
            self.logger.log(level, message, *args)
        else:
            self._held += 1


class OneLine(logging.Filter):
    """aiohttp's server logger says a malformed request as "Error handling request" with a
    traceback: here it becomes one line naming the error (and the traceback goes)."""

    def __init__(self, noise: Noise) -> None:
        super().__init__()
        self.noise = noise

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        what = f"{type(exc).__name__}: {exc}" if exc is not None else record.getMessage()
        what = " ".join(what.split())[:200]  # one line, whatever the parser put in its message
        self.noise(logging.INFO, "control: refused a malformed request (%s)", what)
        return False  # said above, once


def http_logger() -> logging.Logger:
    """The logger aiohttp's request handlers write to (one line per malformed request)."""
    logger = logging.getLogger("appliance.control.http")
    if not any(isinstance(f, OneLine) for f in logger.filters):
        logger.addFilter(OneLine(Noise(log)))
    return logger


def quiet_loop_errors(loop: asyncio.AbstractEventLoop, noise: Noise) -> None:
    """The loop's own errors (accept out of descriptors, a transport failing) as one line."""
    def handle(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        noise(logging.WARNING, "control: %s%s", context.get("message", "event loop error"),
              f" ({type(exc).__name__}: {exc})" if exc is not None else "")
    loop.set_exception_handler(handle)


class _Refuse(asyncio.Protocol):
    """The answer to a connection past the cap when no open one can be closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(REFUSAL)
        transport.close()


class _Tracked(asyncio.Protocol):
    """One connection: aiohttp's request handler inside, its deadline and whether a request on
    it is being answered outside (every protocol call is passed on)."""

    def __init__(self, owner: Connections, handler: RequestHandler) -> None:
        self.owner, self.handler = owner, handler
        self.transport: asyncio.BaseTransport | None = None
        self.generation = 0
        self.busy = False
        self.doomed = False  # closed before asyncio handed it over: it closes on arrival

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.doomed:
            transport.close()
            return
        self.handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.forget(self)
        if not self.doomed:
            self.handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        self.handler.eof_received()
        return None  # close the transport (aiohttp's handler keeps nothing half-open)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def close(self) -> None:
        self.owner.forget(self)
        if self.transport is None:  # accepted, not yet handed over
            self.doomed = True
            return
        self.handler.force_close()
        if not self.transport.is_closing():
            self.transport.close()


class Connections:
    """The listening socket's protocol factory around aiohttp's :class:`web.Server`: the cap, the
    deadlines, and which connection is being answered (:meth:`begin` / :meth:`end`, called by
    the server's first middleware once a request is completely received)."""

    def __init__(self, server: web.Server, loop: asyncio.AbstractEventLoop, *, cap: int,
                 request_timeout_s: float, noise: Noise) -> None:
        self.server, self.loop, self.cap = server, loop, cap
        self.request_timeout_s, self.noise = request_timeout_s, noise
        self._open: dict[_Tracked, None] = {}  # insertion order: oldest first
        self._by_handler: dict[RequestHandler, _Tracked] = {}
        self.refused = self.evicted = self.expired = 0

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self._open) >= self.cap and not self._evict_one():
            self.refused += 1
            self.noise(logging.WARNING, "control: refused a connection (all %d open ones are being answered)",
                       self.cap)
            return _Refuse()
        conn = _Tracked(self, self.server())
        self._open[conn] = None
        self._by_handler[conn.handler] = conn
        self._arm(conn)
        return conn

    def open(self) -> int:
        return len(self._open)

    def forget(self, conn: _Tracked) -> None:
        self._open.pop(conn, None)
        self._by_handler.pop(conn.handler, None)

    def _evict_one(self) -> bool:
        for conn in self._open:
            if not conn.busy:
                conn.close()
                self.evicted += 1
                self.noise(logging.INFO, "control: closed the oldest idle connection (at the cap of %d)", self.cap)
                return True
        return False

    def _arm(self, conn: _Tracked) -> None:
        conn.generation += 1
        conn.busy = False
        self.loop.call_later(self.request_timeout_s, self._expire, conn, conn.generation)

    def _expire(self, conn: _Tracked, generation: int) -> None:
        if conn not in self._open or conn.generation != generation or conn.busy:
            return  # gone, answered since (a newer timer is in charge), or being answered
        conn.close()
        self.expired += 1
        self.noise(logging.INFO, "control: dropped a connection with no complete request within %g s",
                   self.request_timeout_s)

    def begin(self, handler: Any) -> None:
        """A request was completely received on ``handler``: its deadline rests while answered."""
        conn = self._by_handler.get(handler)
        if conn is not None:
            conn.busy = True
            conn.generation += 1

    def end(self, handler: Any) -> None:
        """The answer is done: the next request on the connection has the whole deadline again."""
        conn = self._by_handler.get(handler)
        if conn is not None:
            self._arm(conn)
