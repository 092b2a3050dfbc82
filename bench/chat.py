#!/usr/bin/env python3
"""Chat latency: a viewer's comment posted -> the agent's reply posted, against the sandbox.

Scenarios (each a fresh agent and chat loop, the appliance's own ChatLoop in this process):
  socket-host   Socket.IO + polling catch-up, the host brain
  poll-host     polling alone (chat.realtime: false), the host brain
  socket-llm    Socket.IO, the llm brain against a local fake OpenAI server answering in 500 ms
  poll-llm      polling alone, the same fake LLM
The sandbox runs in its faithful mode: ``joinRoom`` is not acknowledged, Socket.IO payloads carry
only the documented fields, the comments page runs newest first with timestamps to the second.
Both ends of each measurement are the sandbox's own timestamps (when the comment entered its
chat, when the reply did), so the figure is what a viewer would see. Comments come from a new
viewer each (so every reply names whom it answers), spaced randomly (--gap-min..--gap-max s,
seeded) below the default global rate cap, with the default chat settings otherwise.
Prints every scenario's median, p95 and max, and the ratio of each to polling alone with the
host brain (the reference, run in the same process minutes earlier or later).

    .venv/bin/python bench/chat.py --count 20
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.chat import ChatLoop, ChatServices  # noqa: E402
from appliance.chat.settings import ChatConfig  # noqa: E402
from appliance.core.store import StateStore  # noqa: E402
from appliance.retake.client import RetakeClient  # noqa: E402
from appliance.retake.credentials import Secret  # noqa: E402
from appliance.retake.settings import RetakeConfig  # noqa: E402
from appliance.sandbox import Sandbox  # noqa: E402
from tests.support.chat import FakeOpenAI  # noqa: E402  (the tests' fake OpenAI-compatible server)

WALLET = "11111111111111111111111111111111"
SCENARIOS = ("poll-host", "socket-host", "socket-llm", "poll-llm")


def register(sb: Sandbox, name: str) -> tuple[RetakeClient, str]:
    client = RetakeClient(RetakeConfig(base_url=sb.base_url, sandbox=True, timeout_s=5))
    result = client.register(agent_name=name, agent_description="bench", image_url="https://example.com/a.png",
                             wallet_address=WALLET, ticker="BNCH")
    return client.with_token(Secret(result.access_token)), result.userDbId


def chat_events(sb: Sandbox, me: str) -> list[tuple[float, str, str]]:
    """(time, sender, text) of every event in the agent's chat, in order."""
    return sb.call(lambda: [(e.ts, e.sender_username, e.text) for e in sb.platform.chats.get(me, ())])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_scenario(sb: Sandbox, scenario: str, count: int, rng: random.Random, gaps: tuple[float, float],
                 llm_url: str) -> list[float]:
    transport, brain = scenario.split("-")
    name = f"Bench{scenario.replace('-', '')}{rng.randrange(10**6)}"
    client, me = register(sb, name)
    overrides: dict = {"realtime": transport == "socket", "quiet_after_s": 600}
    if brain == "llm":
        overrides["brain"] = {"engine": "llm", "base_url": llm_url, "model": "fake", "timeout_s": 3}
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as state:
        loop = ChatLoop(client, ChatConfig.model_validate(overrides), user_db_id=me, agent_name=name,
                        state=StateStore(Path(state)), stop_event=stop, agent_wallet=WALLET,
                        services=ChatServices(environ={}))
        loop.baseline()
        loop.start()
        try:
            if loop.socket is not None and not loop.socket.joined.wait(10):
                sys.exit("chat bench: the Socket.IO client did not send its joins")
            time.sleep(1.0)
            viewers = [f"b{scenario[:1]}{i:03d}" for i in range(count)]
            for viewer in viewers:
                sb.post_comment(text=f"hello from {viewer}, what are you building?", username=viewer, user_db_id=me)
                time.sleep(rng.uniform(*gaps))
            deadline = time.time() + 30
            while time.time() < deadline and loop.stats.answered < count:
                time.sleep(0.2)
        finally:
            stop.set()
            loop.join(10)
    events = chat_events(sb, me)
    posted = {sender: ts for ts, sender, _text in events if sender in viewers}
    latencies = []
    for viewer in viewers:
        reply = next((ts for ts, sender, text in events if sender == name and re.search(rf"\b{viewer}\b", text)), None)
        if reply is None:
            print(f"  {scenario}: no reply to {viewer}", flush=True)
            continue
        latencies.append(reply - posted[viewer])
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20, help="comments per scenario (default 20)")
    parser.add_argument("--gap-min", type=float, default=2.4, help="shortest gap between comments, s")
    parser.add_argument("--gap-max", type=float, default=4.0, help="longest gap between comments, s")
    parser.add_argument("--llm-delay", type=float, default=0.5, help="the fake LLM's answer time, s")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated of {', '.join(SCENARIOS)}")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    def answer(body: dict) -> str:  # names everyone the turn answers, like a model would
        to_answer = body["messages"][1]["content"].split("To answer now", 1)[-1]
        return "Hi " + ", ".join(re.findall(r"\[(b\w+)\]", to_answer) or ["chat"]) + ", building a chat engine live."

    fake = FakeOpenAI(answer, delay=args.llm_delay)
    results: dict[str, list[float]] = {}
    with Sandbox(port=0, rtmp=False, viewer_interval=0) as sb:
        for scenario in args.scenarios.split(","):
            print(f"chat bench: {scenario}, {args.count} comments ...", flush=True)
            results[scenario] = run_scenario(sb, scenario, args.count, rng, (args.gap_min, args.gap_max), fake.url)
    fake.close()
    reference = statistics.median(results["poll-host"]) if results.get("poll-host") else None
    print(f"\n{'scenario':<12} {'replies':>8} {'median s':>9} {'p95 s':>7} {'max s':>7} {'median/poll-host':>17}")
    for scenario, values in results.items():
        if not values:
            print(f"{scenario:<12} {0:>8}")
            continue
        median = statistics.median(values)
        ratio = f"{median / reference:.2f}" if reference else "-"
        print(f"{scenario:<12} {len(values):>5}/{args.count:<2} {median:>9.3f} {percentile(values, 0.95):>7.3f} "
              f"{max(values):>7.3f} {ratio:>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
