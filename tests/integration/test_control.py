"""The control API over real HTTP, on a live lifecycle against the sandbox."""

from __future__ import annotations

import json
import socket
import stat
import time

import requests

from appliance.control.api import ControlServer
from appliance.control.client import ControlClient
from appliance.control.commands import LiveCommands
from appliance.live.lifecycle import State
from appliance.media.content import ContentLog
from tests.support.control import FakeCommands
from tests.support.live import Running, make_agent, settings_for
from tests.support.tree import wait_until as wait_for


def test_control_api(rtmp_sandbox, tmp_path, xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "ControlAgent")
    settings = settings_for(sb, tmp_path, agent, xvfb_display)
    content = ContentLog(tmp_path / "stream.log", 150)
    with Running(settings) as run:
        commands = LiveCommands(run.lc, encoder=run.encoder, content=content)
        server = ControlServer(commands, state_dir=settings.state_dir, port=0).start()
        try:
            info_path = settings.state_dir / "control.json"
            assert stat.S_IMODE(info_path.stat().st_mode) == 0o600
            client = ControlClient.from_state(settings.state_dir)
            url = client.url
            assert requests.get(f"{url}/health", timeout=5).json()["alive"] is True
            assert requests.get(f"{url}/status", timeout=5).status_code == 401
            assert requests.get(f"{url}/status", timeout=5, headers={"Authorization": "Bearer nope"}).status_code == 401
            wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
            wait_for(lambda: requests.get(f"{url}/ready", timeout=5).status_code == 200, 10, "ready")
            status = client.call("GET", "/status")
            assert status["state"] == "live" and status["is_live"] is True and status["encoder"] == "running"
            metrics = client.call("GET", "/metrics")
            assert "retake_appliance_is_live 1" in metrics and 'state_info{state="live"} 1' in metrics
            assert "retake_appliance_encoder_fps" in metrics and "retake_appliance_restarts_total 0" in metrics

            assert client.call("POST", "/show", {"text": "\x1b[2Jon screen now"}) == {"shown": True}
            shown = (tmp_path / "stream.log").read_text()
            assert "on screen now" in shown and "\x1b" not in shown
            assert client.call("POST", "/chat", {"message": "a line from the operator"}) == {"sent": True}
            assert any(c.text == "a line from the operator" for c in agent["client"].comments(agent["user"]))

            headers = {"Authorization": f"Bearer {client.token}"}
            assert requests.post(f"{url}/say", json={"text": "hi"}, headers=headers, timeout=5).status_code == 503
            assert requests.post(f"{url}/show", data="not json", headers=headers, timeout=5).status_code == 400
            assert requests.post(f"{url}/show", json={"text": ""}, headers=headers, timeout=5).status_code == 400
            assert requests.post(f"{url}/show", data="x" * 20000, headers=headers, timeout=5).status_code == 413
            assert requests.post(f"{url}/nope", json={}, headers=headers, timeout=5).status_code == 404

            assert client.call("POST", "/stop", {}) == {"stopping": True}
            run.thread.join(30)
            assert run.rc == 0 and run.lc.metrics.state is State.STOPPED
        finally:
            server.close()
    assert not (settings.state_dir / "control.json").exists()
    assert json.loads((settings.state_dir / "state.json").read_text())["last_stream"]["status"] == "stopped"


def raw_request(port: int, head: bytes, *, wait: float = 5.0) -> bytes:
    """Send ``head`` as it is; everything the server answers before it closes (or ``wait`` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no answer and no close within {wait} s; got {answer[:200]!r}") from None
            if not chunk:
                return answer
            answer += chunk


def test_the_control_api_trusts_no_length_and_drops_stalled_clients(tmp_path):
    server = ControlServer(FakeCommands(), state_dir=tmp_path, port=0, request_timeout_s=0.5).start()
    auth = f"Authorization: Bearer {server.token}\r\n".encode()
    try:
        def post(length: str, body: bytes = b"") -> bytes:
            return raw_request(server.port, b"POST /show HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth
                               + f"Content-Length: {length}\r\n\r\n".encode() + body)

        def status(answer: bytes) -> int:
            assert answer.startswith(b"HTTP/1."), answer[:100]
            return int(answer.split(b" ", 2)[1])

        assert status(post("-1")) == 400  # read(-1) waited for the client to close
        assert status(post("abc")) == 400  # int() raised: no answer at all
        assert status(post("+5", b"hello")) == 400
        assert status(post(str(10 ** 15))) == 413
        assert status(post("17", b'{"text": "hello"}')) == 200
        chunked = raw_request(server.port, b"POST /show HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth
                              + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert status(chunked) == 411
        started = time.monotonic()
        assert post("100", b'{"text": ') == b""  # a body that never comes: dropped after the timeout
        assert raw_request(server.port, b"POST /show HTTP/1.1\r\n") == b""  # headers that never end
        assert time.monotonic() - started < 4
        assert requests.get(f"http://127.0.0.1:{server.port}/health", timeout=5).status_code == 200
    finally:
        server.close()


def trickle(port: int, head: bytes, every_s: float) -> bytes:
    """Send ``head`` one byte at a time, ``every_s`` apart; what the server answered (b"": it closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(every_s)
        except OSError:  # closed on us mid-way: the deadline worked
            pass
        try:
            return sock.recv(65536)
        except OSError:
            return b""


def test_a_request_trickled_past_the_deadline_gets_no_answer(tmp_path):
    """The flood's request (62 header bytes, one every 1.5 s: 93 s) in miniature: the deadline
    covers the whole request, not each read, so trickling never completes one."""
    server = ControlServer(FakeCommands(), state_dir=tmp_path, port=0, request_timeout_s=1.0).start()
    try:
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: 0123456789ab\r\n\r\n"
        assert len(head) == 62
        started = time.monotonic()
        assert trickle(server.port, head, 0.05) == b""  # 3.1 s of trickling, 1 s allowed
        assert time.monotonic() - started < 5
        assert trickle(server.port, head, 0.0).startswith(b"HTTP/1.1 200")  # the same request, at once
    finally:
        server.close()
