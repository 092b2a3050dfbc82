"""An in-memory transport for ``requests`` (what httpx's ``MockTransport`` is for httpx): a
session whose every request is answered by a function, so a client's policy (retries, redirects,
error mapping, deadlines) is tested without a socket. The sandbox over real HTTP stays for the
integration and end-to-end tests.

    session, transport = mock_session(lambda request: Reply(200, json={"ok": True}))
    client = RetakeClient(cfg, token, session=session)

A handler may raise ``requests.ConnectionError`` (or any transport error) to stand for a broken
exchange. ``Reply.body`` given as a list of byte strings is read one piece per read, with
``on_read`` called before each (a fake clock can advance there: a body that trickles in)."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | Sequence[bytes] = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def pieces(self) -> list[bytes]:
        if self.json is not None:
            return [jsonlib.dumps(self.json).encode()]
        return [self.body] if isinstance(self.body, bytes) else list(self.body)


Handler = Callable[[requests.PreparedRequest], Reply]


class _Raw:
    """What ``Response.raw`` offers the client: ``read1`` one piece at a time."""

    def __init__(self, pieces: list[bytes], on_read: Callable[[], None]) -> None:
        self.pieces, self.on_read = pieces, on_read
        self.closed = False

    def read1(self, amt: int = -1, decode_content: bool = True) -> bytes:
        self.on_read()
        return self.pieces.pop(0) if self.pieces else b""

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        data, self.pieces = b"".join(self.pieces), []
        return data

    def stream(self, amt: int = 65536, decode_content: bool = True) -> Any:
        while self.pieces:
            yield self.pieces.pop(0)

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class MockTransport(BaseAdapter):
    """Answers every request with ``handler(request)``; keeps the requests it saw."""

    def __init__(self, handler: Handler, *, on_read: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.handler, self.on_read = handler, on_read
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        self.requests.append(request)
        reply = self.handler(request)
        response = requests.Response()
        response.status_code = reply.status
        response.headers = CaseInsensitiveDict(reply.headers)
        response.raw = _Raw(reply.pieces(), self.on_read)
        response.url = request.url or ""
        response.request = request
        response.reason = ""
        return response

    def close(self) -> None:
        pass


def mock_session(handler: Handler, *, on_read: Callable[[], None] = lambda: None
                 ) -> tuple[requests.Session, MockTransport]:
    """A ``requests.Session`` whose http and https requests all go to ``handler``."""
    session = requests.Session()
    transport = MockTransport(handler, on_read=on_read)
    session.mount("http://", transport)
    session.mount("https://", transport)
    return session, transport


def sent_json(request: requests.PreparedRequest) -> Any:
    """The JSON body a request carried (None without one)."""
    body = request.body
    if not body:
        return None
    return jsonlib.loads(body if isinstance(body, (bytes, str)) else b"".join(body))
