"""HTTP for the brains that call out (llm, webhook): one deadline for the whole request.

A ``requests`` timeout bounds each read, not the request: an endpoint that drips one byte every
1.5 s keeps its caller for as long as it drips, and a brain whose calls ran on a small pool had
every worker pinned, so every later turn fell back even after the endpoint recovered. Here every
request runs on one asyncio loop (a daemon thread, started on first use) under aiohttp's
``ClientTimeout(total=...)``, which covers connecting, sending and reading the whole answer; at
the deadline the request is cancelled and its connection closed. Nothing stays pinned: the next
turn gets a fresh request whatever the last one met.

Redirects are not followed (a key in a header goes to that URL only), no proxy or netrc is read
from the environment, and an answer larger than ``max_bytes`` is refused.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import aiohttp

MAX_BYTES = 1 << 20
GRACE_S = 1.0  # the caller waits this much longer than the deadline it gave (the loop's own cancel is first)


class BrainHttpError(Exception):
    """A request that got no usable answer in time (the message says why, never a header)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class DeadlineHttp:
    """POSTs with a total deadline, on a private event loop (see the module docstring)."""

    def __init__(self, *, max_bytes: int = MAX_BYTES, max_connections: int = 8) -> None:
        self.max_bytes = max_bytes
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self.cancelled = 0  # requests cut off at their deadline

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="brain-http", daemon=True).start()
                self._loop = loop
            return self._loop

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str], deadline_s: float) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.max_connections),
                                                  trust_env=False)
        timeout = aiohttp.ClientTimeout(total=deadline_s)
        async with self._session.post(url, data=body, headers=dict(headers), timeout=timeout,
                                      allow_redirects=False) as response:
            data = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                data += chunk
                if len(data) > self.max_bytes:
                    raise BrainHttpError(f"the answer is larger than {self.max_bytes} bytes")
            return Answer(response.status, bytes(data))

    def post(self, url: str, body: bytes, headers: Mapping[str, str], deadline_s: float) -> Answer:
        """POST ``body``; the answer, or :class:`BrainHttpError` once ``deadline_s`` has passed
        (or the request failed)."""
        if deadline_s <= 0:
            raise BrainHttpError("no time left")
        future = asyncio.run_coroutine_threadsafe(self._post(url, body, headers, deadline_s), self._running_loop())
        try:
            return future.result(timeout=deadline_s + GRACE_S)
        except (FutureTimeout, TimeoutError):
            future.cancel()
            self.cancelled += 1
            raise BrainHttpError(f"no complete answer within {deadline_s:.1f} s") from None
        except aiohttp.ClientError as exc:
            raise BrainHttpError(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        """Close the connections and stop the loop (the brain is done)."""
        with self._lock:
            loop, session, self._loop, self._session = self._loop, self._session, None, None
        if loop is None:
            return
        if session is not None:
            try:
                asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=2)
            except (FutureTimeout, TimeoutError, RuntimeError):
                pass
        loop.call_soon_threadsafe(loop.stop)
