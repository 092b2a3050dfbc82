"""The retake.tv client over real HTTP against the sandbox."""

from __future__ import annotations

import http.server
import threading
from typing import ClassVar

import pytest

from appliance.core.errors import (
    RetakeBadRequest,
    RetakeConflict,
    RetakeNotFound,
    RetakeServerError,
    RetakeUnauthorized,
    RetakeUnavailable,
    SecurityError,
)
from appliance.retake.client import RetakeClient
from appliance.retake.credentials import Secret
from appliance.retake.settings import RetakeConfig
from appliance.retake.skill import check_skill
from tests.support.data import config, register


@pytest.fixture
def api(sandbox):
    _, client = register(RetakeClient(config(sandbox)))
    return client


def test_register_verify_status_sequence(sandbox):
    anon = RetakeClient(config(sandbox))
    result, client = register(anon, "SeqAgent")
    assert result.access_token.startswith("rtk_") and result.userDbId
    assert "rtk_" not in repr(result) and "rtk_" not in repr(client)
    assert client.verification_status().verified is False
    message = client.prepare_verify().verification_message
    assert "Code" in message
    assert client.verify("https://x.com/seq/status/1234567890").verified is True
    assert client.verification_status().verified is True
    status = client.stream_status()
    assert status.is_live is False


def test_error_codes_map_to_exceptions(sandbox, api):
    anon = RetakeClient(config(sandbox))
    with pytest.raises(RetakeBadRequest) as info:
        register(anon, "ClientAgentDup")
        register(anon, "ClientAgentDup")  # name taken
    assert info.value.status == 400 and "change name" in str(info.value)
    with pytest.raises(RetakeUnauthorized, match="Re-check credentials"):
        anon.with_token(Secret("rtk_wrong")).stream_status()
    with pytest.raises(RetakeNotFound):
        api.user_metadata("no-such-user")
    with pytest.raises(RetakeConflict, match="stream/start"):
        api.stream_stop()


def test_server_errors_are_retried_up_to_the_bound(sandbox, api):
    sleeps: list[float] = []
    client = RetakeClient(config(sandbox, retries=2), api._token, sleep=sleeps.append)
    sandbox.set_fault(status=500, count=10)
    before = len(sandbox.requests())
    with pytest.raises(RetakeServerError):
        client.stream_status()
    assert len(sleeps) == 2 and all(0 < s <= 0.05 for s in sleeps)
    assert client.stats.requests == 3
    assert len([r for r in sandbox.requests()[before:] if r["path"].endswith("stream/status")]) == 3
    sandbox.clear_faults()
    sandbox.set_fault(status=500, count=1)
    assert client.stream_status().is_live is False  # one 500, then a retry that succeeds


def test_non_idempotent_calls_are_not_repeated(sandbox, api):
    sleeps: list[float] = []
    client = RetakeClient(config(sandbox, retries=3), api._token, sleep=sleeps.append)
    sandbox.set_fault(status=500, count=1)
    with pytest.raises(RetakeServerError):
        client.chat_send("hello", "someone")
    assert sleeps == []


def test_connection_refused_is_unavailable_and_bounded():
    sleeps: list[float] = []
    cfg = RetakeConfig(base_url="http://127.0.0.1:9/api/v1", sandbox=True, retries=2, backoff_s=0.01)
    with pytest.raises(RetakeUnavailable):
        RetakeClient(cfg, Secret("rtk_x"), sleep=sleeps.append).stream_status()
    assert len(sleeps) == 2


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict]] = []

    def do_GET(self):
        type(self).seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def other_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_token_does_not_survive_a_redirect_to_another_port(sandbox, api, other_port):
    target = f"http://127.0.0.1:{other_port}/collect"
    assert api.request("GET", f"{sandbox.origin}/_sandbox/redirect?to={target}") == {"ok": True}
    assert _Recorder.seen == [{"path": "/collect", "authorization": None}]
    # the same origin keeps it (the sandbox reports presence, never the value)
    echoed = api.request("GET", f"{sandbox.origin}/_sandbox/echo-headers")
    assert echoed["authorization"] in (True, "present")


def test_token_is_never_sent_to_another_host_directly(api, other_port):
    api.request("GET", f"http://127.0.0.1:{other_port}/direct")
    assert _Recorder.seen[-1]["authorization"] is None


def test_a_body_is_never_resent_off_origin(sandbox, api, other_port):
    with pytest.raises(SecurityError):
        api.request("POST", f"{sandbox.origin}/_sandbox/redirect?to=http://127.0.0.1:{other_port}/x&code=307",
                    json_body={"secret": 1})


def test_public_endpoints_parse(sandbox, api):
    assert isinstance(api.live_users(), list)
    assert isinstance(api.newest_users(), list)
    assert isinstance(api.top_tokens(), list)
    assert isinstance(api.trending_tokens(), list)
    assert isinstance(api.recent_trades(), list)
    assert isinstance(api.active_sessions(), list)
    assert isinstance(api.recorded_sessions(), list)
    assert isinstance(api.scheduled_sessions(), list)
    assert isinstance(api.top_volume(), list)
    assert isinstance(api.top_count(), list)
    me = api.stream_status().userDbId
    assert isinstance(api.public_chat(me), list)
    assert isinstance(api.search_users("ClientAgent"), list)


def test_skill_check_changes_and_offline(sandbox, tmp_path):
    cfg = config(sandbox)
    first = check_skill(cfg, tmp_path)
    assert first.outcome == "first" and (tmp_path / "skill.md").read_text().startswith("#")
    assert check_skill(cfg, tmp_path).outcome == "unchanged"
    sandbox.settings(skill_version="9.9.9")
    try:
        changed = check_skill(cfg, tmp_path)
    finally:
        sandbox.settings(skill_version="2.1.2")
    assert changed.outcome == "changed" and changed.version == "9.9.9" and changed.previous == "2.1.2"
    offline = check_skill(RetakeConfig(base_url="http://127.0.0.1:9/api/v1", sandbox=True, timeout_s=1), tmp_path)
    assert offline.outcome == "offline"
