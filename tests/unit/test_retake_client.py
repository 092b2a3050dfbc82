"""The retake.tv client's policy with an injected transport (tests/support/transport.py): error
mapping, retries and their bound, Retry-After, redirects with the token decided per hop, bodies
that are cut short, too large or too slow. The same client over real HTTP against the sandbox:
tests/integration/test_client.py, test_transport.py and test_token_boundary.py."""

from __future__ import annotations

import random
import time
from email.utils import formatdate

import pytest
import requests

from appliance.core.errors import (
    RetakeBadRequest,
    RetakeConflict,
    RetakeError,
    RetakeNotFound,
    RetakeProtocolError,
    RetakeServerError,
    RetakeTooManyRequests,
    RetakeUnauthorized,
    RetakeUnavailable,
    SecurityError,
)
from appliance.retake.client import MAX_BODY, MAX_REDIRECTS, RetakeClient
from appliance.retake.credentials import Secret
from appliance.retake.models import parse_comments
from appliance.retake.settings import RetakeConfig
from tests.support.transport import Handler, MockTransport, Reply, mock_session, sent_json

TOKEN = "rtk_unit_" + "7" * 24
API = "https://retake.tv/api/v1"
STATUS = {"is_live": True, "viewers": 3, "uptime_seconds": 60}


class Fake:
    """A client on a mock transport, with its sleeps recorded and a clock the test moves."""

    def __init__(self, handler: Handler, **cfg: float) -> None:
        self.sleeps: list[float] = []
        self.now = 0.0
        session, self.transport = mock_session(handler)
        self.client = RetakeClient(RetakeConfig(**cfg), Secret(TOKEN), session=session, sleep=self.sleeps.append,
                                   rng=random.Random(7), clock=lambda: self.now)

    @property
    def sent(self) -> list[requests.PreparedRequest]:
        return self.transport.requests


def replies(*answers: Reply | Exception) -> Handler:
    """A handler giving ``answers`` in order (the last one again once they run out)."""
    queue = list(answers)

    def handle(request: requests.PreparedRequest) -> Reply:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return handle


@pytest.mark.parametrize("status, kind", [(400, RetakeBadRequest), (401, RetakeUnauthorized),
                                          (403, RetakeUnauthorized), (404, RetakeNotFound)])
def test_a_client_error_maps_to_its_exception_once_with_the_platforms_words_cleaned(status, kind) -> None:
    fake = Fake(replies(Reply(status, json={"error": "\x1b[31mno such \x07user"})))
    with pytest.raises(kind) as info:
        fake.client.stream_status()
    assert info.value.status == status and not info.value.temporary
    assert f"GET /api/v1/agent/stream/status: HTTP {status} (no such user)" in info.value.message
    assert len(fake.sent) == 1 and fake.sleeps == []  # a client error is never repeated
    assert TOKEN not in str(info.value)


def test_server_errors_are_retried_up_to_the_bound_with_capped_jittered_backoff() -> None:
    fake = Fake(replies(Reply(500, body=b"oops")), retries=3, backoff_s=0.5, backoff_max_s=1.5)
    with pytest.raises(RetakeServerError, match=r"HTTP 500 \(oops\)"):
        fake.client.stream_status()
    assert len(fake.sent) == 4 and fake.client.stats.retries == 3 and fake.client.stats.errors == {"500": 4}
    caps = [0.5, 1.0, 1.5]  # backoff_s * 2^attempt, never above backoff_max_s
    assert all(cap / 2 <= slept <= cap for slept, cap in zip(fake.sleeps, caps, strict=True)), fake.sleeps


def test_a_server_error_then_an_answer_is_the_answer() -> None:
    fake = Fake(replies(Reply(502), Reply(503), Reply(200, json=STATUS)))
    assert fake.client.stream_status().viewers == 3 and len(fake.sent) == 3 and len(fake.sleeps) == 2


def test_a_call_that_is_not_safe_to_repeat_is_sent_once_whatever_happens() -> None:
    for answer in (Reply(503), requests.ConnectionError("reset")):
        fake = Fake(replies(answer))
        with pytest.raises((RetakeServerError, RetakeUnavailable)):
            fake.client.chat_send("hello", "user_1")
        assert len(fake.sent) == 1 and fake.sleeps == []


def test_a_conflict_is_temporary_for_the_lifecycle_but_not_repeated_here() -> None:
    fake = Fake(replies(Reply(409, json={"error": "no active session"})))
    with pytest.raises(RetakeConflict) as info:
        fake.client.comments("user_1")
    assert info.value.temporary and len(fake.sent) == 1


@pytest.mark.parametrize("retry_after, expected", [("3", 3.0), ("0.25", 0.25), ("120", 8.0)])
def test_429_waits_as_long_as_retry_after_says_within_the_cap(retry_after, expected) -> None:
    fake = Fake(replies(Reply(429, headers={"Retry-After": retry_after}), Reply(200, json=STATUS)),
                backoff_max_s=8.0)
    assert fake.client.stream_status().is_live
    assert fake.sleeps == [expected]


def test_retry_after_as_an_http_date() -> None:
    when = formatdate(time.time() + 30, usegmt=True)
    fake = Fake(replies(Reply(429, headers={"Retry-After": when}), Reply(200, json=STATUS)), backoff_max_s=60)
    fake.client.stream_status()
    assert len(fake.sleeps) == 1 and 27 < fake.sleeps[0] <= 30


def test_rate_limited_to_the_end_is_a_temporary_error() -> None:
    fake = Fake(replies(Reply(429, headers={"Retry-After": "1"})), retries=2)
    with pytest.raises(RetakeTooManyRequests) as info:
        fake.client.stream_status()
    assert info.value.temporary and fake.sleeps == [1.0, 1.0]


def test_a_broken_exchange_is_unavailable_names_no_url_and_is_retried() -> None:
    broken = requests.ConnectionError(f"{API}/agent/stream/status?token={TOKEN}")
    fake = Fake(replies(broken, broken, Reply(200, json=STATUS)))
    assert fake.client.stream_status().viewers == 3 and len(fake.sleeps) == 2
    fake = Fake(replies(broken), retries=1)
    with pytest.raises(RetakeUnavailable, match="ConnectionError") as info:
        fake.client.stream_status()
    assert TOKEN not in str(info.value) and "agent/stream/status?" not in str(info.value)


@pytest.mark.parametrize("body", [b'{"is_live": true, "view', b"<html>gateway</html>"])
def test_a_2xx_that_is_not_complete_json_is_unavailable(body) -> None:
    fake = Fake(replies(Reply(200, body=body)), retries=1)
    with pytest.raises(RetakeUnavailable, match="cut short or not JSON"):
        fake.client.stream_status()
    assert len(fake.sent) == 2


def test_a_body_that_trickles_in_past_the_deadline_is_cut() -> None:
    fake = Fake(replies(Reply(200, body=[b'{"is_live": ', b"true, ", b'"viewers": 3}'])), timeout_s=5, retries=0)
    fake.transport.on_read = lambda: setattr(fake, "now", fake.now + 2.0)  # each piece 2 s after the last
    with pytest.raises(RetakeUnavailable, match="TimeoutError"):
        fake.client.stream_status()


def test_an_answer_larger_than_the_bound_is_refused() -> None:
    piece = b" " * 65536
    fake = Fake(replies(Reply(200, body=[b"{", *[piece] * (MAX_BODY // len(piece) + 1), b"}"])))
    with pytest.raises(RetakeProtocolError, match=f"larger than {MAX_BODY}"):
        fake.client.stream_status()


def test_a_redirect_on_the_origin_keeps_the_token_and_one_elsewhere_drops_it() -> None:
    def handle(request: requests.PreparedRequest) -> Reply:
        if request.path_url == "/api/v1/agent/stream/status":
            return Reply(302, headers={"Location": "/api/v1/agent/stream/status2"})
        if request.path_url == "/api/v1/agent/stream/status2":
            return Reply(307, headers={"Location": "https://cdn.example/status"})
        return Reply(200, json=STATUS)
    fake = Fake(handle)
    assert fake.client.stream_status().viewers == 3
    hops = [(r.url, r.headers.get("Authorization")) for r in fake.sent]
    assert hops == [(f"{API}/agent/stream/status", f"Bearer {TOKEN}"),
                    (f"{API}/agent/stream/status2", f"Bearer {TOKEN}"),
                    ("https://cdn.example/status", None)]


def test_a_request_with_a_body_is_never_resent_off_the_origin() -> None:
    fake = Fake(replies(Reply(307, headers={"Location": "https://evil.example/send"}), Reply(200, json={})))
    with pytest.raises(SecurityError, match=r"evil\.example"):
        fake.client.chat_send("hi", "user_1")
    assert [r.url for r in fake.sent] == [f"{API}/agent/stream/chat/send"]
    assert sent_json(fake.sent[0])["access_token"] == TOKEN  # it went to the origin only


def test_a_303_after_a_post_is_followed_as_a_get_without_the_body() -> None:
    fake = Fake(replies(Reply(303, headers={"Location": "/api/v1/agent/stream/status"}), Reply(200, json=STATUS)))
    fake.client.request("POST", "agent/stream/start", json_body={"x": 1})
    assert [r.method for r in fake.sent] == ["POST", "GET"] and fake.sent[1].body is None


@pytest.mark.parametrize("location", ["https://user:pw@retake.tv/api/v1/x", "https://retake.tv\\@evil.com/",
                                      "https://retake.tv/a b", "https://retake.tv/\x00"])
def test_an_unsafe_location_is_refused(location) -> None:
    fake = Fake(replies(Reply(302, headers={"Location": location}), Reply(200, json=STATUS)))
    with pytest.raises(RetakeProtocolError, match="refused a redirect"):
        fake.client.stream_status()
    assert len(fake.sent) == 1


def test_redirects_are_bounded() -> None:
    fake = Fake(replies(Reply(302, headers={"Location": "/api/v1/agent/stream/status"})), retries=0)
    with pytest.raises(RetakeProtocolError, match=f"more than {MAX_REDIRECTS} redirects"):
        fake.client.stream_status()
    assert len(fake.sent) == MAX_REDIRECTS + 1


def test_public_calls_carry_no_token() -> None:
    fake = Fake(replies(Reply(200, json={"user_id": "u", "username": "x"})))
    fake.client.streamer("x")
    assert "Authorization" not in fake.sent[0].headers


def test_every_error_is_a_retake_error() -> None:
    for status in (400, 401, 403, 404, 409, 418, 429, 500, 503):
        fake = Fake(replies(Reply(status)), retries=0)
        with pytest.raises(RetakeError):
            fake.client.stream_status()


def test_the_transport_fake_is_the_only_way_out() -> None:
    session, transport = mock_session(replies(Reply(200, json=STATUS)))
    assert isinstance(session.get_adapter(API), MockTransport) and transport.requests == []


def test_unknown_comment_shape_is_a_clear_error():
    with pytest.raises(RetakeProtocolError, match="stream/comments"):
        parse_comments({"weird": 1})
    skipped: list[str] = []  # an unreadable item is skipped and counted, the rest of the page kept
    assert parse_comments([{"foo": "bar"}, "x", {"_id": "1", "text": "ok"}], on_skip=skipped.append)[0].text == "ok"
    assert skipped == ["no_text", "not_object"]
