"""Shutdown, whatever ends the controller (defects 2 and 7 and the LIVE loop's deadlines).

A real encoder (x11grab on Xvfb) pushing to the sandbox's nginx-rtmp ingest; the HTTP
transport is a real requests session to the sandbox, wrapped to inject what the network or a
bug does: an exception nobody maps, a slow answer.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
import requests
from urllib3.exceptions import ProtocolError

from appliance.control.commands import LiveCommands
from appliance.core.errors import RetakeUnavailable
from appliance.live.lifecycle import State
from appliance.media.encoder import Encoder
from appliance.retake.client import RetakeClient
from tests.support.live import Running, make_agent, settings_for
from tests.support.sandbox import entry_name
from tests.support.tree import pid_alive
from tests.support.tree import wait_until as wait_for


class TransportBug(RuntimeError):
    """Something below the client went wrong in a way nobody mapped."""


class Recorder:
    """One ordered list of what happened, shared by the encoder and the session."""

    def __init__(self) -> None:
        self.events: list[str] = []


class RecordingEncoder(Encoder):
    def __init__(self, stream, recorder: Recorder) -> None:
        super().__init__(stream)
        self.recorder = recorder

    def stop(self, timeout: float | None = None) -> int | None:
        if self.pid is not None and self.health().state == "running":
            self.recorder.events.append("encoder stop")
        return super().stop(timeout)


class FaultySession(requests.Session):
    """A real session to the sandbox. ``blip`` (an exception class) is raised by the next
    stream/status answer's body read once armed; ``slow_s`` delays every stream/status and token
    read, honouring the caller's read timeout the way a socket does."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.trust_env = False
        self.recorder = recorder
        self.blip: type[BaseException] | None = None
        self.slow_s = 0.0

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        path = urlsplit(url).path
        if path.endswith("agent/stream/stop"):
            self.recorder.events.append("stream/stop")
        slow = path.endswith("agent/stream/status") or "/tokens/" in path
        if slow and self.slow_s:
            timeout = kwargs.get("timeout")
            read = timeout[1] if isinstance(timeout, tuple) else timeout
            time.sleep(min(self.slow_s, read or self.slow_s))
            if read is not None and read < self.slow_s:
                raise requests.ReadTimeout(f"read timed out ({read} s)")
        response = super().request(method, url, *args, **kwargs)
        if path.endswith("agent/stream/status") and self.blip is not None:
            blip, self.blip = self.blip, None

            def read(*_a, **_k):
                raise blip("Connection broken: the peer reset it mid-body")
            response.raw.read = response.raw.read1 = read
        return response


def small(sb, tmp_path, agent, display, **overrides):
    return settings_for(sb, tmp_path, agent, display, stream={"width": 320, "height": 240}, **overrides)


def running(settings, recorder: Recorder, **kw) -> tuple[Running, FaultySession]:
    session = FaultySession(recorder)
    client = RetakeClient(settings.retake, session=session)
    return Running(settings, encoder=RecordingEncoder(settings.stream, recorder), client=client, **kw), session


def requests_named(sb, name: str, after: int = 0) -> int:
    return sum(1 for r in sb.requests()[after:] if entry_name(r) == name)


def client_maps(blip: type[BaseException], settings) -> bool:
    """Whether the retake client turns ``blip`` in a body read into its retryable error."""
    session = FaultySession(Recorder())
    session.blip = blip
    client = RetakeClient(settings.retake.model_copy(update={"retries": 0}), session=session)
    try:
        client.request("GET", "agent/stream/status", auth=False)
    except RetakeUnavailable:
        return True
    except Exception:
        return False
    return True


@pytest.mark.parametrize("blip", [ProtocolError, TransportBug], ids=["urllib3-ProtocolError", "unmapped-exception"])
def test_whatever_escapes_ends_in_an_orderly_shutdown(rtmp_sandbox, tmp_path, xvfb_display, blip):
    """Defect 2: an exception from below the client mid-LIVE used to escape run(): no
    stream/stop, FFmpeg orphaned. Now the outermost frame stops the encoder, then calls
    stream/stop once, saves the final state and exits non-zero. (A blip the client maps to its
    retryable error is ridden out instead: then the stream stays live.)"""
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, f"Blip{blip.__name__}")
    settings = small(sb, tmp_path, agent, xvfb_display)
    recorder = Recorder()
    run, session = running(settings, recorder)
    with run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        ffmpeg = run.encoder.pid
        mark = len(sb.requests())
        session.blip = blip
        if client_maps(blip, settings):
            time.sleep(3)
            assert run.lc.metrics.state is State.LIVE and requests_named(sb, "agent/stream/stop", mark) == 0
            return
        run.thread.join(30)
        assert run.rc == 1 and run.lc.metrics.state is State.FAILED
    assert recorder.events[-2:] == ["encoder stop", "stream/stop"], recorder.events
    assert requests_named(sb, "agent/stream/stop", mark) == 1
    assert not pid_alive(ffmpeg)
    state = json.loads((settings.state_dir / "state.json").read_text())
    assert "crashed" in state["last_error"] and blip.__name__ in state["last_error"]
    assert state["last_stream"]["status"] == "stopped"
    assert any("controller crashed" in line for line in run.lines)
    assert "stopped_on_error" in settings.notify_file().read_text()


def test_shutdown_stops_the_encoder_first_then_one_short_stream_stop(rtmp_sandbox, tmp_path, xvfb_display):
    """Defect 7: stream/stop (up to ~40 s with retries) ran before the encoder stopped, so a
    supervisor's SIGKILL could leave FFmpeg streaming. Now: encoder first, one stream/stop."""
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "OrderlyAgent")
    settings = small(sb, tmp_path, agent, xvfb_display)
    recorder = Recorder()
    run, _ = running(settings, recorder)
    with run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        mark = len(sb.requests())
        sb.set_fault(status=503, paths="agent/stream/stop", count=10)  # the platform is struggling
        started = time.monotonic()
        run.stop.set()
        run.thread.join(30)
        took = time.monotonic() - started
    assert run.rc == 0 and run.lc.metrics.state is State.STOPPED
    assert recorder.events[-2:] == ["encoder stop", "stream/stop"], recorder.events
    assert requests_named(sb, "agent/stream/stop", mark) == 1  # once: no retries at shutdown
    assert took < 15, f"shutdown took {took:.1f} s"


def test_a_turn_of_slow_calls_never_reads_as_stuck(rtmp_sandbox, tmp_path, xvfb_display):
    """Each LIVE-loop call has its own deadline and the heartbeat is beaten between calls, so a
    slow platform (every status read taking longer than the liveness window) never makes
    /health fail — the loop is alive, only the platform is slow."""
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "SlowNetAgent")
    settings = small(sb, tmp_path, agent, xvfb_display)
    window = 4.0
    run, session = running(settings, Recorder(), liveness_window_s=window)
    with run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        commands = LiveCommands(run.lc, encoder=run.encoder)
        session.slow_s = window * 1.5
        seen = []
        deadline = time.monotonic() + window * 2.5
        while time.monotonic() < deadline:
            seen.append(commands.health())
            time.sleep(0.1)
        session.slow_s = 0
        assert all(h["alive"] for h in seen), max(h["loop_age_s"] for h in seen)
        assert max(h["status_age_s"] for h in seen) >= window  # the platform really was unreadable
        assert run.lc.metrics.state is State.LIVE
