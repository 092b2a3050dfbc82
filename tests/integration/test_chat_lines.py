"""Never the same line twice, not even across streams (the skill: "never repeat jokes, phrases,
or formats across streams"): the host's bank never says a line again and rests the phrases of
the last stream; the llm brain writes its own lines for a quiet chat, told what it said before,
with the same deadline and fallback as its replies. Remembered in the SQLite memory, bounded."""

from __future__ import annotations

import re

from appliance.chat import ChatServices
from appliance.chat.memory import ChatDb, ViewerMemory, line_key
from appliance.chat.settings import MemoryConfig, ProactiveConfig
from tests.support.chat import FakeOpenAI, agent_lines, chat_agent, make_chat

HOUR = 3600.0


def template_of(line: str) -> str:
    """Which bank template a line was made from."""
    for template in ProactiveConfig().lines:
        pattern = re.escape(template)
        for name in ("idea", "uptime", "viewers", "agent"):
            pattern = pattern.replace(re.escape("{" + name + "}"), ".+")
        if re.fullmatch(pattern, line):
            return template
    raise AssertionError(f"{line!r} is from no template")


def quiet_stream(sandbox, tmp_path, client, me, name, now, wall, minutes: int, **overrides) -> list[str]:
    """One stream: chat quiet for ``minutes`` (a keep-alive check every simulated second)."""
    before = len(agent_lines(client, me))
    loop = make_chat(sandbox, tmp_path, client, me, name, clock=lambda: now[0], wall=lambda: wall[0],
                     quiet_after_s=10, max_messages_per_minute=120, burst=20, **overrides)
    loop.poll_once()
    for _ in range(60 * minutes):
        now[0] += 1
        wall[0] += 1
        loop.keep_alive()
    loop.db.close()
    return agent_lines(client, me)[before:]


def test_no_line_and_no_phrase_of_one_stream_comes_back_in_the_next(sandbox, tmp_path):
    client, me, _ = chat_agent(sandbox, "FreshAgent")
    now, wall = [1000.0], [1_800_000_000.0]
    first = quiet_stream(sandbox, tmp_path, client, me, "FreshAgent", now, wall, minutes=1)
    wall[0] += 3 * HOUR  # the chat quiet for longer than a session gap: the next stream
    second = quiet_stream(sandbox, tmp_path, client, me, "FreshAgent", now, wall, minutes=1)
    wall[0] += 3 * HOUR
    third = quiet_stream(sandbox, tmp_path, client, me, "FreshAgent", now, wall, minutes=1)
    assert len(first) >= 5 and len(second) >= 5 and len(third) >= 5
    keys = [line_key(line) for line in first + second + third]
    assert len(keys) == len(set(keys)), "a line came back"
    assert not {template_of(x) for x in first} & {template_of(x) for x in second}  # the phrases rested
    assert not {template_of(x) for x in second} & {template_of(x) for x in third}


def test_a_bank_used_up_says_nothing_rather_than_a_line_again(sandbox, tmp_path, caplog):
    client, me, _ = chat_agent(sandbox, "SmallBank")
    now, wall = [1000.0], [1_800_000_000.0]
    lines = ["Line one about {idea}.", "Line two."]
    said = quiet_stream(sandbox, tmp_path, client, me, "SmallBank", now, wall, minutes=3,
                        proactive={"lines": lines}, stream_ideas=["idea a", "idea b", "idea c"])
    assert len(said) == 4  # three ideas for the first, one line for the second
    assert "chat.proactive.lines" in caplog.text and caplog.text.count("has been said") == 1  # once, with the fix


def test_the_said_lines_are_bounded(tmp_path):
    db = ChatDb(tmp_path / "memory.sqlite3", clock=lambda: 1_800_000_000.0)
    memory = ViewerMemory(db, MemoryConfig(said_rows=100))
    for i in range(250):
        db.clock = lambda i=i: 1_800_000_000.0 + i
        memory.record_said(f"line number {'x' * (i % 7)} {chr(65 + i % 26)}{i // 26}")
    memory.prune()
    assert db.query("SELECT COUNT(*) AS n FROM said")[0]["n"] == 100
    assert memory.said_before(f"line number {'x' * (249 % 7)} {chr(65 + 249 % 26)}{249 // 26}")


def test_the_llm_writes_its_own_quiet_lines_never_one_said_before(sandbox, tmp_path):
    answers = iter(["Who here has ever debugged a robot at 3am?", "WHO here has ever debugged a robot at 3am!!",
                    "Dare: give me a word and I will build a game around it."])
    prompts: list[str] = []

    def answer(body: dict) -> str:
        prompts.append(body["messages"][1]["content"])
        return next(answers)

    fake = FakeOpenAI(answer)
    client, me, _ = chat_agent(sandbox, "WriterAgent")
    now, wall = [1000.0], [1_800_000_000.0]
    brain = {"brain": {"engine": "llm", "base_url": fake.url, "model": "m", "timeout_s": 2.0},
             "services": ChatServices(environ={})}
    try:
        first = quiet_stream(sandbox, tmp_path, client, me, "WriterAgent", now, wall, minutes=0)
        loop = make_chat(sandbox, tmp_path, client, me, "WriterAgent", clock=lambda: now[0], wall=lambda: wall[0],
                         quiet_after_s=10, **brain)
        loop.poll_once()
        for _ in range(3):  # three quiet moments
            now[0] += 11
            wall[0] += 11
            loop.keep_alive()
        said = agent_lines(client, me)
        assert first == [] and len(said) == 3
        assert said[0] == "Who here has ever debugged a robot at 3am?"
        assert template_of(said[1])  # the model's second line was its first again: the host's bank said one
        assert said[2] == "Dare: give me a word and I will build a game around it."
        assert "Chat has gone quiet" in prompts[1], prompts[1]
        assert "who here has ever debugged a robot at 3am" in prompts[1], prompts[1]
        assert loop.brain.fallbacks == 1
        fake.delay = 5.0  # the model hangs: the bank answers within the deadline
        now[0] += 11
        wall[0] += 11
        loop.keep_alive()
        assert template_of(agent_lines(client, me)[-1]) and loop.brain.fallbacks == 2
        loop.brain.close()
        loop.db.close()
    finally:
        fake.close()
