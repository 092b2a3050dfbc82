"""Waiting for is_live after the encoder started: the first status poll as soon as FFmpeg has
written data, and a poll that came too early is followed by another soon (0.25 s, doubling up to
stream.status_poll_s), not by a whole poll interval (3 s: the go-live time doubled on main)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from appliance.core.store import StateStore
from appliance.live.lifecycle import WAIT_LIVE_FIRST_POLL_S, Lifecycle
from appliance.retake.models import StreamStatus
from tests.support.data import settings_in


@dataclass
class Health:
    state: str = "running"
    reason: str = ""


class Encoder:
    def __init__(self) -> None:
        self.output_after = 2  # has_output() answers False this many times first

    def start(self, target: str) -> None: ...
    def stop(self) -> None: ...

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


class Clock:
    """A stop event whose waits move the fake clock (and never block)."""

    def __init__(self, now: list[float]) -> None:
        self.now = now

    def wait(self, seconds: float | None = None) -> bool:
        self.now[0] += seconds or 0.0
        return False

    def is_set(self) -> bool:
        return False


def lifecycle(tmp_path: Path, live_from_poll: int) -> tuple[Lifecycle, list[float]]:
    now, polls = [0.0], []
    settings = settings_in(tmp_path, stream={"status_poll_s": 3, "live_timeout_s": 30})
    lc = Lifecycle(settings, client=Client(live_from_poll, now, polls), encoder=Encoder(),
                   capture=lambda: b"", notifier=None, state=StateStore(tmp_path / "state"),
                   stop_event=Clock(now), clock=lambda: now[0])
    return lc, polls


def test_the_first_poll_waits_for_the_encoders_first_bytes_only(tmp_path: Path) -> None:
    lc, polls = lifecycle(tmp_path, live_from_poll=1)
    lc._wait_live()
    assert polls == [0.2]  # two checks of has_output, 0.1 s apart, then at once


def test_an_early_poll_is_followed_by_another_soon_then_backing_off_to_the_interval(tmp_path: Path) -> None:
    lc, polls = lifecycle(tmp_path, live_from_poll=6)
    lc._wait_live()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(polls)]
    assert gaps == [WAIT_LIVE_FIRST_POLL_S, 0.5, 1.0, 2.0, 3.0]  # main: [3.0, 3.0, 3.0, 3.0, 3.0]
