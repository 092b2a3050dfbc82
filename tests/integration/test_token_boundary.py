"""The token boundary, checked where it matters: at real listeners that record what reaches them.

Two loopback listeners stand for the two sides: "allowed" (the configured sandbox origin,
``http://127.0.0.1:A``) and "evil" (``127.0.0.1:E``), each also on ``[::1]`` when IPv6 works.
A stub resolver makes every DNS name (``evil.com``, ``retake.tv.evil.com``, IDNA look-alikes)
resolve to 127.0.0.1, as an attacker controlling those names would arrange, so where a request
*really* went is the listener that got it plus the ``Host`` it named. Hypothesis generates hostile
URLs (user info, backslashes, ``%2f``/``%5c``, IDNA look-alikes, upper case, trailing dots, ports,
IPv6 literals, whitespace and control characters) as redirect ``Location``s and as ``base_url``;
the property is that a listener sees the token (bearer header or ``chat/send`` body) if and only
if the request reached the allowed origin — never by asking our own code what it decided.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from appliance.config import parse_config
from appliance.core.errors import ApplianceError, ConfigError, SecurityError
from appliance.retake.client import RetakeClient
from appliance.retake.credentials import Secret
from appliance.retake.settings import RetakeConfig
from tests.support.urls import PROPERTY, hostile, independent_origin

TOKEN = "rtk_boundary_" + "5" * 24
AGENT = {"name": "Boundary", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": "11111111111111111111111111111111", "ticker": "B"}


@dataclass
class Seen:
    listener: str
    method: str
    path: str
    host: str
    authorization: str
    token: bool  # the token anywhere in what arrived: request line, headers or body


@dataclass
class Board:
    """What every listener received, and the redirect the allowed listener answers next."""

    seen: list[Seen] = field(default_factory=list)
    redirect: tuple[int, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, redirect: tuple[int, str] | None = None) -> None:
        with self.lock:
            self.seen.clear()
            self.redirect = redirect


def _handler(name: str, board: Board, redirects: bool) -> type[http.server.BaseHTTPRequestHandler]:
    class Recorder(http.server.BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            raw = f"{self.requestline}\n{self.headers}".encode("latin-1", "replace") + body
            with board.lock:
                board.seen.append(Seen(name, self.command, self.path, self.headers.get("Host", ""),
                                       self.headers.get("Authorization", ""), TOKEN.encode() in raw))
                plan, board.redirect = (board.redirect, None) if redirects else (None, board.redirect)
            if plan is not None:
                code, location = plan
                self.send_response_only(code)
                self.flush_headers()
                self.wfile.write(b"Location: " + location.encode("utf-8") + b"\r\nContent-Length: 0\r\n\r\n")
                return
            answer = json.dumps({"is_live": False, "viewers": 0, "userDbId": "u1", "success": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_HEAD = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Recorder


class _V6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@dataclass
class Listeners:
    board: Board
    allowed: int  # port of the allowed origin on 127.0.0.1
    evil: int

    @property
    def allowed_host(self) -> str:
        return f"127.0.0.1:{self.allowed}"


@pytest.fixture(scope="module")
def listeners() -> Iterator[Listeners]:
    board = Board()
    servers: list[http.server.HTTPServer] = []
    allowed = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler("allowed", board, True))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler("evil", board, False))
    servers += [allowed, evil]
    for name, port in (("allowed-v6", allowed.server_address[1]), ("evil-v6", evil.server_address[1])):
        try:
            servers.append(_V6Server(("::1", port), _handler(name, board, False)))
        except OSError:
            pass  # no IPv6 loopback here: those URLs are refused connections, which leak nothing
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):  # every name is the attacker's, on loopback
        try:
            return real(host, port, *args, **{**kwargs, "flags": socket.AI_NUMERICHOST})
        except (socket.gaierror, UnicodeError, TypeError):
            return real("127.0.0.1", port, socket.AF_INET, socket.SOCK_STREAM)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", resolver)
        yield Listeners(board, allowed.server_address[1], evil.server_address[1])
    for server in servers:
        server.shutdown()
        server.server_close()


def client_for(base_url: str) -> RetakeClient:
    cfg = RetakeConfig(base_url=base_url, sandbox=True, timeout_s=2, retries=0)
    return RetakeClient(cfg, Secret(TOKEN))


def check_iff(listeners: Listeners) -> list[Seen]:
    seen = list(listeners.board.seen)
    for hit in seen:
        at_allowed = hit.listener == "allowed" and hit.host == listeners.allowed_host
        assert hit.token == at_allowed, f"token {'sent' if hit.token else 'withheld'}: {hit}"
        assert not hit.authorization.lower().startswith("basic"), hit
    return seen


# --- redirects ---------------------------------------------------------------------------------------

def follow(listeners: Listeners, code: int, location: str, *, post: bool) -> list[Seen]:
    client = client_for(f"http://127.0.0.1:{listeners.allowed}/api/v1")
    listeners.board.reset((code, location))
    try:
        if post:
            client.chat_send("hello", "u1")
        else:
            client.stream_status()
    except ApplianceError:
        pass  # a refusal or a failed hop leaks nothing by itself; the listeners tell
    return check_iff(listeners)


def test_redirect_location_token_iff_allowed_origin(listeners: Listeners) -> None:
    @PROPERTY
    @given(location=hostile(listeners.allowed, listeners.evil), code=st.sampled_from((301, 302, 303, 307, 308)),
           post=st.booleans())
    @example(location=f"http://evil.com:{listeners.evil}\\@127.0.0.1:{listeners.allowed}/x", code=302, post=False)
    @example(location=f"http://evil.com:{listeners.evil}\\@127.0.0.1:{listeners.allowed}/x", code=307, post=True)
    @example(location=f"http://127.0.0.1:{listeners.allowed}@evil.com:{listeners.evil}/x", code=302, post=False)
    @example(location=f"HTTP://127.0.0.1.:{listeners.allowed}/x", code=302, post=False)
    def run(location: str, code: int, post: bool) -> None:
        seen = follow(listeners, code, location, post=post)
        assert seen and seen[0].listener == "allowed" and seen[0].token  # the first hop is ours
        outcomes[(seen[1].listener, seen[1].token) if len(seen) > 1 else ("refused", False)] += 1

    outcomes: Counter[tuple[str, bool]] = Counter()
    run()
    # the generator really exercises both sides (a property that never reaches a listener proves nothing)
    assert outcomes[("allowed", True)] and outcomes[("evil", False)] and outcomes[("refused", False)], outcomes


def test_redirect_hops_that_stay_on_the_origin_keep_the_token(listeners: Listeners) -> None:
    # the "if" half, spelled out: same origin in other spellings keeps the token
    for location in (f"HTTP://127.0.0.1:{listeners.allowed}/x", f"http://127.0.0.1.:{listeners.allowed}/x",
                     f"//127.0.0.1:{listeners.allowed}/x", "/api/v1/agent/stream/status", "x"):
        seen = follow(listeners, 307, location, post=True)
        assert [(s.listener, s.token) for s in seen] == [("allowed", True), ("allowed", True)], location
    # ... and a backslash trick that a stdlib parser reads as the allowed origin goes nowhere
    seen = follow(listeners, 302, f"http://evil.com:{listeners.evil}\\@127.0.0.1:{listeners.allowed}/x", post=False)
    assert [s.listener for s in seen] == ["allowed"]


def test_base_url_token_goes_exactly_where_the_connection_goes(listeners: Listeners) -> None:
    @PROPERTY
    @given(url=hostile(listeners.allowed, listeners.evil).map(
        lambda u: u if "://" in u else f"http://127.0.0.1:{listeners.allowed}{u}"))
    @example(url=f"http://evil.com:{listeners.evil}\\@127.0.0.1:{listeners.allowed}/api/v1")
    @example(url=f"http://user:pw@127.0.0.1:{listeners.allowed}/api/v1")
    @example(url=f"http://127.0.0.1:{listeners.allowed}/api/v1")
    def run(url: str) -> None:
        try:
            client = client_for(url)
        except (ValidationError, ValueError):
            return  # refused at config time
        host, port = independent_origin(url)
        listeners.board.reset()
        for call in (client.stream_status, lambda: client.chat_send("hello", "u1")):
            try:
                call()
            except ApplianceError:
                pass
        expected = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        for hit in listeners.board.seen:
            assert hit.host == expected and hit.token, f"{url!r}: {hit}"
            assert not hit.authorization.lower().startswith("basic"), hit
        outcomes[listeners.board.seen[0].listener if listeners.board.seen else "no answer"] += 1

    outcomes: Counter[str] = Counter()
    run()
    assert outcomes["allowed"] and outcomes["evil"], outcomes


def test_userinfo_in_base_url_is_refused_not_turned_into_basic_auth(listeners: Listeners) -> None:
    url = f"http://user:pw@127.0.0.1:{listeners.allowed}/api/v1"
    with pytest.raises(ConfigError, match="user info"):
        parse_config({"agent": AGENT, "retake": {"base_url": url, "sandbox": True}})
    client = client_for(f"http://127.0.0.1:{listeners.allowed}/api/v1")
    listeners.board.reset()
    with pytest.raises(SecurityError, match="user info"):
        client.request("GET", f"http://user:pw@127.0.0.1:{listeners.allowed}/api/v1/agent/stream/status")
    assert listeners.board.seen == []
    basic = base64.b64encode(b"user:pw").decode()
    assert all(basic not in s.authorization for s in listeners.board.seen)


