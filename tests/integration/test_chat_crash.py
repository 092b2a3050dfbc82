"""A real SIGKILL in the middle of a chat burst, then a restart: no reply repeated, no message lost.

The chat loop runs in its own process (``chat_runner.py``). It is killed with SIGKILL inside a
chat send — before the request goes out, or after the platform took the message but before the
loop recorded it — or from outside at an arbitrary moment; more comments arrive while it is
down; a new process on the same state folder must answer every comment exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.chat import chat_agent, wait_for
from tests.support.data import WALLET

RUNNER = Path(__file__).resolve().parent.parent / "support" / "chat_runner.py"


def start_runner(sb, token, me, name, state_dir, die=""):
    cmd = [sys.executable, str(RUNNER), sb.base_url, token, me, name, str(state_dir)]
    if die:
        cmd += ["--die", die]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.stdout.read() if proc.poll() is not None else line
    return proc


def journal(state_dir):
    conn = sqlite3.connect(str(Path(state_dir) / "memory.sqlite3"), timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def states(state_dir, texts):
    """The journal's state of each posted comment, found by its text: one message has one row
    whichever path brought it (a copy seen by the other path under another id is a ``twin``)."""
    with journal(state_dir) as conn:
        rows = [(json.loads(r["body"]).get("text"), r["state"])
                for r in conn.execute("SELECT body, state FROM inbox WHERE state != 'twin'")]
    by_text: dict[str, list[str]] = {}
    for text, state in rows:
        by_text.setdefault(text, []).append(state)
    assert all(len(v) == 1 for v in by_text.values()), "one message journaled twice"
    return [by_text.get(t, [None])[0] for t in texts]


@pytest.mark.parametrize("die", ["before:3", "after:3", "external"])
def test_sigkill_mid_burst_repeats_none_and_loses_none(sandbox, tmp_path, die):
    name = f"Crash{die.split(':')[0].title()}"
    client, me, token = chat_agent(sandbox, name)
    state_dir = tmp_path / "state"
    first = start_runner(sandbox, token, me, name, state_dir, "" if die == "external" else die)
    try:
        posted = []
        for i in range(100):  # a steady stream of comments until the loop dies in a send
            posted.append(sandbox.post_comment(text=f"hello {i}", username=f"c{i:02d}", user_db_id=me)["text"])
            time.sleep(0.03)
            if die == "external" and sum(s == "answered" for s in states(state_dir, posted)) >= 5:
                first.send_signal(signal.SIGKILL)
            if first.poll() is not None:
                break
        assert first.wait(20) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    posted += [sandbox.post_comment(text=f"while down {i}", username=f"d{i:02d}", user_db_id=me)["text"]
               for i in range(15)]
    second = start_runner(sandbox, token, me, name, state_dir)
    try:
        wait_for(lambda: all(s == "answered" for s in states(state_dir, posted)), 40, "every comment answered")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, second.stdout.read()
    with journal(state_dir) as conn:
        outbox = conn.execute("SELECT state, message_id, text FROM outbox").fetchall()
    assert not [r for r in outbox if r["state"] == "pending"]
    sent_ids = {r["message_id"] for r in outbox if r["state"] == "sent"}
    ours = [c for c in client.comments(me, limit=100) if c.wallet_address == WALLET]
    assert len(ours) == len({c.id for c in ours}) == len(sent_ids)  # every message we sent, once
    assert {c.id for c in ours} == sent_ids
    texts = [c.text for c in ours]
    assert len(texts) == len(set(texts)), "a reply went out twice"
