"""The chat inside `appliance live`: the baseline is taken before stream/start, so a viewer who
speaks the moment the stream starts is answered (issue 8: seen unanswered in 2 of 8 runs)."""

from __future__ import annotations

import threading

from appliance.live.lifecycle import State
from tests.support.chat import agent_lines
from tests.support.live import Running, make_agent, settings_for
from tests.support.sandbox import entry_name
from tests.support.tree import wait_until as wait_for


def test_a_viewer_speaking_right_at_stream_start_is_answered(rtmp_sandbox, tmp_path, xvfb_display):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "EagerAgent")
    sb.settings(comments_shape="observed")  # no timestamps to fall back on: only the baseline helps
    posted: list[dict] = []

    def on_request(entry: dict) -> None:
        if entry_name(entry) == "agent/stream/start" and entry.get("status") == 200 and not posted:
            posted.append({})  # once; the comment goes in from another thread (this is the sandbox's)
            threading.Thread(target=lambda: posted.append(
                sb.post_comment(text="first!", username="eager", user_db_id=agent["user"]))).start()

    sb.app_state.log.listeners.append(on_request)
    settings = settings_for(sb, tmp_path, agent, xvfb_display)
    with Running(settings) as run:
        wait_for(lambda: run.lc.metrics.state is State.LIVE, 40, "LIVE")
        wait_for(lambda: any("eager" in line for line in agent_lines(agent["client"], agent["user"])), 10,
                 "the answer to the first viewer")
    names = [entry_name(e) for e in sb.requests()]
    assert names.index("agent/stream/comments") < names.index("agent/stream/start")
