"""The builder's direction (issue 20.3): cleaned and bounded, kept across a restart, on screen
(the topic), in the brain's context (the llm's prompt, an outside brain's payload, the host's
proactive lines) and on the event bus. The HTTP, CLI and webhook paths: tests/integration/
test_notify_duties.py and tests/e2e/test_scenes_follow.py."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from appliance.chat.brains.base import ChatContext, Turn
from appliance.chat.brains.host import HostBrain, ProactiveBank
from appliance.chat.brains.llm import LlmBrain
from appliance.chat.settings import ChatConfig
from appliance.control.events import EventBus
from appliance.core.errors import InputError
from appliance.core.store import StateStore
from appliance.live.direction import Directions
from appliance.live.settings import DirectionConfig


def test_a_direction_is_cleaned_bounded_shown_published_and_kept(tmp_path):
    topics: list[str] = []
    bus = EventBus()
    directions = Directions(DirectionConfig(max_chars=40), store=StateStore(tmp_path), topic=topics.append,
                            publish=bus.publish)
    chat = SimpleNamespace(ctx=ChatContext(agent_name="A", started_at=0.0))
    directions.attach(chat)  # type: ignore[arg-type]
    result = directions.apply("\x1b[31mDo the ocean quiz\x07 and then a live build of a tiny synth", "cli")
    cut = "Do the ocean quiz and then a live build…"  # control characters gone, 40 characters at most
    assert result == {"direction": cut, "source": "cli"} and len(cut) == 40
    assert topics == [cut] and chat.ctx.direction == cut
    (event,) = bus.since(0)[0]
    assert event.kind == "direction" and event.data == {"text": cut, "source": "cli"}
    with pytest.raises(InputError):
        directions.apply(" \x1b\x07 ", "cli")
    assert directions.apply("x" * 10, "somewhere else")["source"] == "api"  # unknown sources are "api"

    restarted: list[str] = []
    again = Directions(DirectionConfig(max_chars=40), store=StateStore(tmp_path), topic=restarted.append)
    assert again.current == "x" * 10 and restarted == ["x" * 10]  # on screen again after a restart
    later = SimpleNamespace(ctx=ChatContext(agent_name="A", started_at=0.0))
    again.attach(later)  # type: ignore[arg-type]
    assert later.ctx.direction == "x" * 10  # and in the next run's brain


def test_webhook_answers_can_be_switched_off(tmp_path):
    topics: list[str] = []
    Directions(DirectionConfig(webhook_replies=False), store=StateStore(tmp_path),
               topic=topics.append).from_webhook("take over the world")
    assert topics == []


def test_the_brains_see_the_direction():
    ctx = ChatContext(agent_name="Agent", started_at=0.0, ideas=["idea one", "idea two", "idea three"],
                      direction="an ocean quiz")
    assert ctx.payload(Turn("message", ()))["context"]["direction"] == "an ocean quiz"
    brain = LlmBrain(ChatConfig().llm, fallback=HostBrain(), persona="p")
    prompt = brain.messages(Turn("message", ()), ctx)[1]["content"]
    assert "The builder's direction for this stream: an ocean quiz." in prompt
    bank = ProactiveBank(ChatConfig().proactive, rng=random.Random(1))
    lines = [bank.next(ctx) or "" for _ in range(5)]
    ideas_used = [line for line in lines if "idea one" in line or "idea two" in line]
    assert ideas_used == [] and any("an ocean quiz" in line for line in lines)
