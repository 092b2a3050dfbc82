"""Scenes follow the stream (issue 20.2): the lifecycle's real state machine drives a
SceneFollow whose stage is a fake screen; the decoded-recording check is
tests/e2e/test_scenes_follow.py."""

from __future__ import annotations

import threading

import pytest

from appliance.live.machine import Machine, State
from appliance.live.scenes import Phase, SceneFollow, Stage, final_line, phase_for
from appliance.live.waiting import Hold
from appliance.scene.settings import SceneConfig

GO_LIVE = [State.CREDENTIALS, State.VERIFICATION, State.SKILL_CHECK, State.RTMP, State.STREAM_START,
           State.ENCODER_START, State.WAIT_LIVE, State.THUMBNAIL, State.OPEN_CHAT]


class Screen:
    def __init__(self, scenes=("live", "starting", "brb", "ending")) -> None:
        self.shown: list[str] = []
        self.texts: list[str] = []
        self.available = list(scenes)

    def stage(self) -> Stage:
        return Stage(switch=self.shown.append, scenes=lambda: self.available, text=self.texts.append)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def machine(clock: Clock) -> Machine:
    return Machine(stop_event=threading.Event(), clock=clock, progress=lambda line: None,
                   publish=lambda kind, data: None)


def following(cfg: SceneConfig, screen: Screen, clock: Clock) -> tuple[Machine, SceneFollow]:
    m = machine(clock)
    follow = SceneFollow(cfg, screen.stage(), clock=clock)
    m.on_enter.append(follow.follow(m))
    return m, follow


def go_live(m: Machine, clock: Clock) -> None:
    for state in GO_LIVE:
        m.enter(state)
    m.metrics.live_since = clock()
    m.enter(State.LIVE, "stream #1")


def test_starting_while_going_live_then_live_after_the_welcome_then_brb_and_back():
    screen, clock = Screen(), Clock()
    m, follow = following(SceneConfig(starting_s=5), screen, clock)
    go_live(m, clock)
    assert screen.shown == ["starting"]  # once: the same phase is not switched to again
    clock.now += 4.9
    assert follow.tick() is False and screen.shown == ["starting"]  # the first viewers see the welcome
    clock.now += 0.2
    assert follow.tick() is True and screen.shown == ["starting", "live"]
    assert follow.tick() is False
    m.enter(State.RECOVERING, "encoder exited")
    for state in (State.RTMP, State.STREAM_START, State.ENCODER_START, State.WAIT_LIVE):
        m.enter(state)  # a recovery's steps: still brb, not the starting card
    assert screen.shown == ["starting", "live", "brb"]
    m.enter(State.LIVE, "recovered")
    assert screen.shown[-1] == "live"  # at once: the welcome is for the start only


def test_a_recovery_before_the_live_scene_shows_brb_at_once():
    screen, clock = Screen(), Clock()
    m, follow = following(SceneConfig(starting_s=5), screen, clock)
    go_live(m, clock)
    m.enter(State.RECOVERING, "ingest dropped")
    clock.now += 10
    assert follow.tick() is False  # the pending switch to live was cancelled
    assert screen.shown == ["starting", "brb"]


def test_holds_a_cooldown_is_brb_a_standby_is_the_starting_card():
    assert phase_for(State.WAITING, been_live=False, hold=Hold("standby", "x")) is Phase.STARTING
    assert phase_for(State.WAITING, been_live=False, hold=Hold("cooldown", "x", 1.0)) is Phase.BRB
    assert phase_for(State.WAITING, been_live=True, hold=Hold("no_credentials", "x")) is Phase.BRB
    assert phase_for(State.STOPPING, been_live=True, hold=None) is None  # the end card has its own call
    assert phase_for(State.ENCODER_START, been_live=True, hold=None) is Phase.BRB
    assert phase_for(State.ENCODER_START, been_live=False, hold=None) is Phase.STARTING


def test_the_end_card_carries_the_figures_and_says_how_long_to_stream_it():
    screen, clock = Screen(), Clock()
    m, follow = following(SceneConfig(starting_s=0, ending_s=4), screen, clock)
    go_live(m, clock)
    assert screen.shown == ["starting", "live"]  # starting_s 0: live at once
    assert follow.ending(duration_s=725, peak_viewers=7, messages=23, replies=1) == 4
    assert screen.shown[-1] == "ending"
    assert screen.texts == ["Live 12m 05s · peak 7 viewers · 23 messages · 1 reply"]


def test_an_operator_scene_stays_until_the_next_phase():
    screen, clock = Screen(), Clock()
    m, _follow = following(SceneConfig(starting_s=0), screen, clock)
    go_live(m, clock)
    screen.shown.append("quiz")  # `appliance scene quiz`: the follower does not fight it
    m.enter(State.RECOVERING, "x")
    assert screen.shown[-2:] == ["quiz", "brb"]


@pytest.mark.parametrize("cfg, scenes, expected", [
    (SceneConfig(follow=False), ("live", "starting", "brb", "ending"), []),
    (SceneConfig(), ("live",), ["live"]),  # a custom scene folder without starting, brb, ending
], ids=["follow-off", "no-templates"])
def test_off_or_without_the_templates_the_screen_is_left_alone(cfg, scenes, expected):
    screen, clock = Screen(scenes), Clock()
    m, follow = following(cfg, screen, clock)
    go_live(m, clock)
    clock.now += 60
    follow.tick()
    m.enter(State.RECOVERING, "x")
    assert follow.ending(duration_s=1, peak_viewers=0, messages=0, replies=0) == 0
    assert screen.shown == expected


def test_final_line_counts():
    assert final_line(duration_s=3 * 3600 + 61, peak_viewers=1, messages=0, replies=2) == \
        "Live 3h 01m · peak 1 viewer · 0 messages · 2 replies"


def test_the_content_window_takes_its_lines_from_the_bus():
    """The lifecycle no longer relays chat lines: app.py subscribes the content window."""
    from appliance.app import content_lines
    from appliance.config import parse_config
    from appliance.control.events import EventBus
    from tests.support.data import WALLET
    settings = parse_config({"agent": {"name": "Lines", "description": "d", "image_url": "https://example.com/a.png",
                                       "wallet_address": WALLET, "ticker": "LIN"}})
    lines: list[str] = []
    bus = EventBus()
    bus.subscribe(content_lines(lines.append, settings))
    bus.publish("state", {"state": "live", "detail": "stream #3"})
    bus.publish("chat", {"id": "1", "text": "hello", "user": {"name": "ana"}})
    bus.publish("tip", {"id": "2", "text": "tipped 1 SOL", "user": {"name": "bo"}, "amount": 1})
    bus.publish("reply", {"text": "welcome ana", "routes": ["chat", "voice"]})
    bus.publish("reply", {"text": "only spoken", "routes": ["voice"]})
    bus.publish("state", {"state": "live", "detail": "recovered (restart #1)"})
    assert lines == ["LIVE at https://retake.tv/Lines — say hi in chat", "ana: hello", "bo: tipped 1 SOL",
                     "Lines > welcome ana"]
