"""Transport failures against the sandbox's fault surface: every one is the retryable RetakeUnavailable.

The sandbox runs the endpoint for real and then breaks its answer (headers then a reset, a body
trickled past the deadline, a complete response with cut JSON), or answers 429 with Retry-After.
Nothing may escape as a urllib3/requests/socket exception: that is what once killed the
controller without ``stream/stop``.
"""

from __future__ import annotations

import time

import pytest

from appliance.core.errors import RetakeUnavailable
from appliance.retake.client import (
    RetakeClient,
    _retry_after_seconds,  # the real parser (a local stand-in could not fail)
)
from appliance.retake.credentials import Secret
from appliance.retake.settings import RetakeConfig
from appliance.retake.skill import check_skill
from tests.support.data import config, register


@pytest.fixture
def agent(sandbox):
    result, _ = register(RetakeClient(config(sandbox)), "Transport")
    return Secret(result.access_token)


def client(sandbox, token, sleeps=None, **kw) -> RetakeClient:
    settings = {"timeout_s": 5, "retries": 0, "backoff_s": 0.01, "backoff_max_s": 5, **kw}
    cfg = RetakeConfig(base_url=sandbox.base_url, sandbox=True, **settings)
    return RetakeClient(cfg, token, sleep=sleeps.append if sleeps is not None else time.sleep)


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_a_broken_answer_is_unavailable_and_retried(sandbox, agent, kind):
    sandbox.set_fault(kind=kind, count=1, paths="agent/stream/status")
    with pytest.raises(RetakeUnavailable, match="stream/status"):
        client(sandbox, agent).stream_status()
    sleeps: list[float] = []
    sandbox.set_fault(kind=kind, count=1, paths="agent/stream/status")
    assert client(sandbox, agent, sleeps, retries=2).stream_status().is_live is False  # broken once, then fine
    assert len(sleeps) == 1
    assert [f["hits"] for f in sandbox.faults(include_done=True) if f["kind"] == kind] == [1, 1]


def test_a_reset_mid_chat_send_is_not_repeated(sandbox, agent):
    sleeps: list[float] = []
    me = client(sandbox, agent).stream_status().userDbId
    sandbox.set_fault(kind="reset", count=1, paths="agent/stream/chat/send")
    with pytest.raises(RetakeUnavailable):
        client(sandbox, agent, sleeps, retries=3).chat_send("hello once", me)
    assert sleeps == []  # not idempotent: never re-sent
    sent = [e for e in sandbox.requests() if e["path"].endswith("chat/send")]
    assert len(sent) == 1 and sent[0]["fault_kind"] == "reset"


@pytest.mark.parametrize("delay_s", [6.0, 30.0])
def test_a_slow_body_is_cut_at_the_deadline(sandbox, agent, delay_s):
    # 6 s: pieces every ~0.7 s, each read in time, the whole past the 1 s deadline;
    # 30 s: the read itself times out mid-body (a piece every ~3.3 s)
    sandbox.set_fault(kind="slow", count=1, delay_s=delay_s, paths="agent/stream/status")
    started = time.monotonic()
    with pytest.raises(RetakeUnavailable, match="no complete answer"):
        client(sandbox, agent, timeout_s=1).stream_status()
    assert time.monotonic() - started < 5.0  # well before the body would have finished


def test_429_waits_as_long_as_retry_after_says(sandbox, agent):
    sleeps: list[float] = []
    sandbox.set_fault(kind="ratelimit", count=1, retry_after=2, paths="agent/stream/status")
    assert client(sandbox, agent, sleeps, retries=1).stream_status().is_live is False
    assert sleeps == [2.0]
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert _retry_after_seconds("soon") is None


def test_the_skill_check_survives_a_reset(sandbox, tmp_path):
    sandbox.set_fault(kind="reset", count=1, paths="/skill.json")
    outcome = check_skill(RetakeConfig(base_url=sandbox.base_url, sandbox=True, timeout_s=2), tmp_path)
    assert outcome.outcome == "offline" and "ProtocolError" in outcome.detail
