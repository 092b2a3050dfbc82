"""Waiting for is_live after the encoder started: the first status poll as soon as FFmpeg has
written data, and a poll that came too early is followed by another soon (0.25 s, doubling up to
stream.status_poll_s), not by a whole poll interval (3 s: the go-live time doubled on main)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from appliance.live.machine import Machine
from appliance.live.supervise import WAIT_LIVE_FIRST_POLL_S, Supervisor
from appliance.retake.models import StreamStatus
from tests.support.data import settings_in


@dataclass
class Health:
    state: str = "running"
    reason: str = ""


class Encoder:
    def __init__(self) -> None:
        self.output_after = 2  # has_output() answers False this many times first

    def health(self) -> Health:
        return Health()

    def has_output(self) -> bool:
        self.output_after -= 1
        return self.output_after < 0


class Client:
    def __init__(self, live_from_poll: int, now: list[float], polls: list[float]) -> None:
        self.live_from_poll, self.now, self.polls = live_from_poll, now, polls

    def stream_status(self) -> StreamStatus:
        self.polls.append(self.now[0])
        return StreamStatus(is_live=len(self.polls) >= self.live_from_poll, viewers=0)


class FakeTime:
    """A stop event whose waits move the fake clock (and never block)."""

    def __init__(self, now: list[float]) -> None:
        self.now = now

    def wait(self, seconds: float | None = None) -> bool:
        self.now[0] += seconds or 0.0
        return False

    def is_set(self) -> bool:
        return False


def supervisor(tmp_path: Path, live_from_poll: int) -> tuple[Supervisor, list[float]]:
    now, polls = [0.0], []
    machine = Machine(stop_event=FakeTime(now), clock=lambda: now[0], progress=lambda line: None,
                      publish=lambda kind, data: None)
    run = SimpleNamespace(machine=machine, settings=settings_in(tmp_path, stream={"status_poll_s": 3,
                                                                                   "live_timeout_s": 30}),
                          parts=SimpleNamespace(encoder=Encoder()), timing=SimpleNamespace(clock=lambda: now[0]),
                          client=Client(live_from_poll, now, polls))
    return Supervisor(run), polls


def test_the_first_poll_waits_for_the_encoders_first_bytes_only(tmp_path: Path) -> None:
    sup, polls = supervisor(tmp_path, live_from_poll=1)
    sup._wait_live()
    assert polls == [0.2]  # two checks of has_output, 0.1 s apart, then at once


def test_an_early_poll_is_followed_by_another_soon_then_backing_off_to_the_interval(tmp_path: Path) -> None:
    sup, polls = supervisor(tmp_path, live_from_poll=6)
    sup._wait_live()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(polls)]
    assert gaps == [WAIT_LIVE_FIRST_POLL_S, 0.5, 1.0, 2.0, 3.0]  # main: [3.0, 3.0, 3.0, 3.0, 3.0]
