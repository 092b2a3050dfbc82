"""The restart budget and holds (defect 3): every stream/start counts, the count survives
controller restarts, and past the cap the controller stays up in a cool-down (alive, not
ready, saying why and until when, the operator told once) instead of exiting into an
orchestrator's restart loop. Against the sandbox's real nginx-rtmp ingest, which refuses the
publish (a key it did not issue) — a persistent ingest failure."""

from __future__ import annotations

import json
import time

from appliance.control.commands import LiveCommands
from appliance.live.lifecycle import State
from appliance.media.encoder import Encoder
from tests.support.live import Running, make_agent, settings_for
from tests.support.sandbox import entry_name
from tests.support.tree import wait_until as wait_for


class RefusedEncoder(Encoder):
    """Publishes with a key the ingest never issued: refused, every time (as the sandbox's
    ``publish_refused`` fault does)."""

    def start(self, target: str) -> None:
        super().start(target + "-not-issued")


def stream_starts(sb) -> int:
    return sum(1 for r in sb.requests() if entry_name(r) == "agent/stream/start")


def notes(settings, event: str) -> list[dict]:
    path = settings.notify_file()
    lines = path.read_text().splitlines() if path.exists() else []
    return [n for n in map(json.loads, lines) if n["event"] == event]


def in_cooldown(run) -> bool:
    hold = run.lc.metrics.hold
    return run.lc.metrics.state is State.WAITING and hold is not None and hold.reason == "cooldown"


def test_a_persistent_ingest_failure_never_exceeds_the_budget_across_restarts(rtmp_sandbox, tmp_path,
                                                                             xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "BudgetAgent")
    settings = settings_for(sb, tmp_path, agent, xvfb_display, stream={"width": 320, "height": 240},
                            recovery={"max_restarts_per_hour": 3, "backoff_s": 0.1, "backoff_max_s": 1})

    with Running(settings, encoder=RefusedEncoder(settings.stream)) as run:  # the first controller
        wait_for(lambda: in_cooldown(run), 90, "a cool-down")
        commands = LiveCommands(run.lc, encoder=run.encoder)
        assert commands.health()["alive"] is True  # up on purpose: no orchestrator restarts it
        ready, why = commands.ready()
        assert ready is False and "cooldown" in why and "until" in why
        waiting = commands.status()["waiting"]
        assert waiting["reason"] == "cooldown" and 3000 < waiting["seconds_left"] <= 3600
        assert "spam streaming" in waiting["detail"]
        metrics = commands.metrics()
        assert 'retake_appliance_waiting{reason="cooldown"} 1' in metrics
        assert "retake_appliance_stream_starts_last_hour 3" in metrics
        assert run.encoder.health().state in ("stopped", "exited")  # nothing pushes during a cool-down
        time.sleep(2)
        assert stream_starts(sb) == 3  # the first go-live counted too
    assert run.rc == 0  # a stop during a cool-down is a clean exit
    log = sb.requests()
    last_start = max(i for i, r in enumerate(log) if entry_name(r) == "agent/stream/start")
    assert any(entry_name(r) == "agent/stream/stop" for r in log[last_start:])  # the session was ended
    assert len(notes(settings, "cooldown")) == 1

    with Running(settings, encoder=RefusedEncoder(settings.stream)) as again:  # restarted, as an orchestrator would
        wait_for(lambda: in_cooldown(again), 30, "the same cool-down after a restart")
        time.sleep(2)
        assert stream_starts(sb) == 3  # nothing started: the budget is in state.json
    assert len(notes(settings, "cooldown")) == 1  # and the operator is not told twice

    later = lambda: time.time() + 3600  # noqa: E731 - an hour on: the window allows starts again
    with Running(settings, encoder=RefusedEncoder(settings.stream), wall_clock=later) as hour_on:
        wait_for(lambda: in_cooldown(hour_on), 90, "the next cool-down")
        assert stream_starts(sb) == 6  # tried again, within the budget, then waited again
    assert len(notes(settings, "cooldown")) == 2


def test_no_credentials_is_a_hold_saying_what_to_run(sandbox, tmp_path):
    agent = make_agent(sandbox, tmp_path, "PatientAgent")
    saved = agent["cred_path"].read_bytes()
    agent["cred_path"].unlink()
    settings = settings_for(sandbox, tmp_path, agent, ":1")
    with Running(settings, credentials_recheck_s=0.3) as run:
        wait_for(lambda: run.lc.metrics.state is State.WAITING, 10, "a hold")
        commands = LiveCommands(run.lc, encoder=run.encoder)
        ready, why = commands.ready()
        assert commands.health()["alive"] is True and ready is False
        assert "no_credentials" in why and "appliance register" in why
        assert commands.status()["waiting"]["until"] is None
        agent["cred_path"].write_bytes(saved)  # the operator registers (or mounts the secret)
        wait_for(lambda: run.lc.metrics.state not in (State.WAITING, State.CREDENTIALS), 10, "going on")
        assert run.lc.creds is not None and run.lc.creds.agent_name == "PatientAgent"
    assert len(notes(settings, "no_credentials")) == 1


