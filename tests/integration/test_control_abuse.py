"""The control API under abuse (17.5, 17.7), over real sockets: the connection cap closes idle
squatters so /health answers, a full house of busy connections is refused with 503, event
streams whose readers stop reading are dropped by the write deadline, a revoked console
session's stream closes, each appliance's console cookie is its own, and a malformed or stalled
request is one log line, never a traceback."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import requests

from appliance.control.api import ControlServer
from appliance.control.events import EventBus
from tests.support.control import FakeCommands
from tests.support.tree import wait_until


def idle_connections(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed ``sock`` (what it sent before, a refusal or events, is read)."""
    sock.settimeout(0.05)
    try:
        while sock.recv(65536):
            pass
        return True
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def health_ms(port: int) -> float:
    started = time.monotonic()
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    return (time.monotonic() - started) * 1000


def test_squatters_past_the_cap_make_room_and_health_keeps_answering(tmp_path: Path) -> None:
    server = ControlServer(FakeCommands(), state_dir=tmp_path, port=0, max_connections=32,
                           request_timeout_s=60).start()
    try:
        squatters = idle_connections(server.port, 200)  # 6x the cap; each sends a partial request
        for sock in squatters:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        times = [health_ms(server.port) for _ in range(50)]
        assert sorted(times)[-1] < 1000, times
        wait_until(lambda: sum(closed_by_server(s) for s in squatters) >= 200 - 32, 10, "the oldest squatters closed")
        assert server.connections is not None and server.connections.open() <= 32
        for sock in squatters:
            sock.close()
    finally:
        server.close()


class SlowStatus(FakeCommands):
    def status(self):
        answer = super().status()  # recorded first: the test sees it is being answered
        time.sleep(3)
        return answer


def test_when_every_open_connection_is_being_answered_a_newcomer_gets_503(tmp_path: Path) -> None:
    commands = SlowStatus()
    server = ControlServer(commands, state_dir=tmp_path, port=0, max_connections=4).start()
    auth = {"Authorization": f"Bearer {server.token}"}
    try:
        busy = [threading.Thread(target=requests.get, args=(server.url + "/status",),
                                 kwargs={"headers": auth, "timeout": 10}) for _ in range(4)]
        for thread in busy:
            thread.start()
        wait_until(lambda: sum(1 for c in commands.calls if c[0] == "status") == 4, 5, "four busy requests")
        refused = requests.get(server.url + "/health", timeout=5)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        for thread in busy:
            thread.join(10)
        assert requests.get(server.url + "/health", timeout=5).status_code == 200
    finally:
        server.close()


def sse_reader(port: int, token: str, *, rcvbuf: int = 4096) -> socket.socket:
    """An event stream whose reader reads its headers and then never again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    sock.settimeout(5)
    assert b" 200 " in sock.recv(200)
    return sock


def test_event_streams_whose_readers_stop_reading_are_dropped(tmp_path: Path) -> None:
    bus = EventBus()
    server = ControlServer(FakeCommands(), state_dir=tmp_path, port=0, bus=bus, write_timeout_s=1.0,
                           stream_min_age_s=3600).start()
    try:
        stalled = [sse_reader(server.port, server.token) for _ in range(8)]
        full = requests.get(server.url + "/events", headers={"Authorization": f"Bearer {server.token}"}, timeout=5)
        assert full.status_code == 503  # all 8 slots held
        started = time.monotonic()
        filler = "x" * 900
        while server.streams and time.monotonic() - started < 30:
            for _ in range(200):
                bus.publish("chat", {"text": filler})
            time.sleep(0.1)
        assert not server.streams, f"{len(server.streams)} stalled readers still hold a slot"
        with requests.get(server.url + "/events", headers={"Authorization": f"Bearer {server.token}"},
                          timeout=5, stream=True) as fresh:
            assert fresh.status_code == 200
        for sock in stalled:
            sock.close()
    finally:
        server.close()


def test_a_full_house_makes_room_by_closing_the_oldest_stream(tmp_path: Path) -> None:
    server = ControlServer(FakeCommands(), state_dir=tmp_path, port=0, bus=EventBus(), max_event_streams=2,
                           stream_min_age_s=0.5).start()
    auth = {"Authorization": f"Bearer {server.token}"}
    try:
        first = sse_reader(server.port, server.token, rcvbuf=65536)
        second = sse_reader(server.port, server.token, rcvbuf=65536)
        time.sleep(0.6)
        with requests.get(server.url + "/events", headers=auth, timeout=5, stream=True) as third:
            assert third.status_code == 200
            wait_until(lambda: closed_by_server(first), 5, "the oldest stream closed")
            assert not closed_by_server(second)
        first.close()
        second.close()
    finally:
        server.close()


def console_login(server: ControlServer, browser: requests.Session) -> str:
    path = requests.post(server.url + "/console/ticket", json={}, timeout=5,
                         headers={"Authorization": f"Bearer {server.token}"}).json()["path"]
    page = browser.get(server.url + path, timeout=5).text
    return page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_a_revoked_console_session_closes_its_event_stream(tmp_path: Path) -> None:
    server = ControlServer(FakeCommands(), state_dir=tmp_path, port=0, bus=EventBus(), session_hours=1).start()
    try:
        browser = requests.Session()
        csrf = console_login(server, browser)
        with browser.get(server.url + "/events", timeout=10, stream=True) as stream:
            assert stream.status_code == 200
            ended = threading.Event()

            def read() -> None:
                try:
                    for _ in stream.iter_content(64):
                        pass
                finally:
                    ended.set()
            threading.Thread(target=read, daemon=True).start()
            time.sleep(0.5)
            assert not ended.is_set()
            out = browser.post(server.url + "/console/logout", json={}, timeout=5,
                               headers={"X-CSRF-Token": csrf, "Origin": server.url})
            assert out.status_code == 200
            assert ended.wait(3), "the stream of a revoked session stayed open"
        assert browser.get(server.url + "/console/state", timeout=5).status_code == 401
    finally:
        server.close()


def test_each_appliance_has_its_own_console_cookie(tmp_path: Path) -> None:
    """Two appliances on one host, one browser: logging into B does not log A out."""
    a = ControlServer(FakeCommands(), state_dir=tmp_path / "a", port=0, session_hours=1).start()
    b = ControlServer(FakeCommands(), state_dir=tmp_path / "b", port=0, session_hours=1).start()
    try:
        browser = requests.Session()  # cookies are per host, not per port: one jar, like a browser's
        console_login(a, browser)
        assert browser.get(a.url + "/console/state", timeout=5).status_code == 200
        console_login(b, browser)
        assert browser.get(b.url + "/console/state", timeout=5).status_code == 200
        assert browser.get(a.url + "/console/state", timeout=5).status_code == 200
    finally:
        a.close()
        b.close()


def test_a_malformed_or_stalled_request_is_one_log_line(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server = ControlServer(FakeCommands(), state_dir=tmp_path, port=0, request_timeout_s=0.5).start()
    try:
        for head in (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
                     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",  # TLS to a plain port
                     b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"):                    # never finished
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(head)
                sock.settimeout(3)
                try:
                    while sock.recv(4096):
                        pass
                except OSError:
                    pass
        time.sleep(0.2)
    finally:
        server.close()
    records = [r for r in caplog.records if r.name.startswith(("appliance", "aiohttp"))]
    assert not [r for r in records if r.exc_info or "Traceback" in r.getMessage()], \
        [r.getMessage() for r in records if r.exc_info]
    said = [r.getMessage() for r in records if r.getMessage().startswith("control: ")]
    assert len([m for m in said if "malformed" in m]) == 2 and len([m for m in said if "no complete" in m]) == 1, said
    assert all("\n" not in m for m in said)
