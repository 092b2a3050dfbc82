"""Every outgoing word passes the one filter (17.4): a token sent to POST /say is never queued
for the voice, to POST /show never drawn or logged, typed for the terminal never typed, set as
the direction never shown, and the same through the console (a session cookie) and the MCP
tools. The live appliance's commands run against recording fakes of the voice, the stage,
the content window and the terminal, behind a real control server over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from appliance.control.api import ControlServer
from appliance.control.commands import LiveCommands
from appliance.core.outgoing import OutgoingFilter, Secrets

TOKEN = "rtk_5c1e0f2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b"
LLM_KEY = "sk-test-3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"


class Recorder:
    """The voice, the stage (with its screen), the content window and the terminal at once."""

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.drawn: list[str] = []
        self.logged: list[str] = []
        self.typed: list[str] = []
        self.topics: list[str] = []
        self.scene = self

    # Voice
    def say(self, text: str, priority: Any = "operator") -> Any:
        self.spoken.append(text)
        return SimpleNamespace(text=text, status="queued", error="", wait=lambda timeout=None: True,
                               summary=lambda: {"id": "u1", "status": "queued", "position": 0})

    def flush(self) -> int: return 0
    def interrupt(self) -> bool: return False
    def pending(self) -> int: return 0
    def current(self) -> Any: return None

    # Stage and its Screen
    def scenes(self) -> list[str]: return ["live"]
    def set_scene(self, name: str) -> None: pass
    def show(self, text: str) -> None: self.drawn.append(text)
    def set_topic(self, text: str) -> None: self.topics.append(text)
    def snapshot(self) -> Any: return None

    # ContentWindow
    def write(self, text: object) -> str:
        self.logged.append(str(text))
        return str(text)

    # TerminalPane
    def send(self, text: str, *, enter: bool = True) -> dict[str, object]:
        self.typed.append(text)
        return {"typed": True}

    def keys(self, keys: Any) -> dict[str, object]: return {}
    def read(self, lines: int = 40, *, pane: str = "shell") -> str: return f"$ echo {TOKEN}\n{TOKEN}"

    def everything(self) -> str:
        return "\n".join(self.spoken + self.drawn + self.logged + self.typed + self.topics)


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    parts = Recorder()
    lifecycle = SimpleNamespace(creds=SimpleNamespace(access_token=SimpleNamespace(reveal=lambda: TOKEN)))
    secrets = Secrets(sources=[lambda: [LLM_KEY]])
    commands = LiveCommands(lifecycle, encoder=None, content=parts, stage=parts, voice=parts, terminal=parts,  # type: ignore[arg-type]
                            outgoing=OutgoingFilter(Secrets(sources=[secrets, lambda: [TOKEN]])))
    server = ControlServer(commands, state_dir=tmp_path, port=0, session_hours=1, mcp=True)
    secrets.add(server.token)
    server.start()
    yield server, parts
    server.close()


LEAKS = {"the token": f"my token is {TOKEN}", "a 16-character slice": f"part {TOKEN[17:33]} of it",
         "the token reversed": TOKEN[::-1], "the LLM key spaced out": " ".join(LLM_KEY)}


@pytest.mark.parametrize("leak", LEAKS.values(), ids=list(LEAKS))
def test_a_secret_is_refused_on_every_http_path_and_reaches_nothing(setup: Any, leak: str) -> None:
    server, parts = setup
    auth = {"Authorization": f"Bearer {server.token}"}
    for path, body in (("/say", {"text": leak}), ("/show", {"text": leak}), ("/direction", {"text": leak}),
                       ("/terminal", {"text": leak})):
        answer = requests.post(server.url + path, json=body, headers=auth, timeout=10)
        assert answer.status_code == 422, (path, answer.text)
        assert "contains a secret" in answer.json()["error"] and leak not in answer.text
    assert parts.everything() == "", parts.everything()
    ok = requests.post(server.url + "/say", json={"text": "hello viewers"}, headers=auth, timeout=10)
    assert ok.status_code == 202 and parts.spoken == ["hello viewers"]


def test_the_control_bearer_is_a_secret_too_and_the_pane_read_back_is_scrubbed(setup: Any) -> None:
    server, parts = setup
    auth = {"Authorization": f"Bearer {server.token}"}
    assert requests.post(server.url + "/say", json={"text": server.token}, headers=auth, timeout=10).status_code == 422
    screen = requests.post(server.url + "/terminal", json={}, headers=auth, timeout=10).json()["screen"]
    assert TOKEN not in screen and "[redacted]" in screen
    assert parts.spoken == []


def test_the_console_and_mcp_take_the_same_path(setup: Any) -> None:
    server, parts = setup
    auth = {"Authorization": f"Bearer {server.token}"}
    login = requests.post(server.url + "/console/ticket", json={}, headers=auth, timeout=10).json()["path"]
    browser = requests.Session()
    assert browser.get(server.url + login, timeout=10).status_code == 200  # followed to the page
    page = browser.get(server.url + "/console", timeout=10).text
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    said = browser.post(server.url + "/say", json={"text": f"read {TOKEN}"}, timeout=10,
                        headers={"X-CSRF-Token": csrf, "Origin": server.url})
    assert said.status_code == 422

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def mcp() -> None:
        async with httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30)) as http, \
                Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client:
            for tool, args in (("say", {"text": TOKEN[::-1]}), ("show", {"text": TOKEN}),
                               ("terminal", {"text": f"echo {TOKEN[4:24]}"})):
                result = await client.call_tool(tool, args)
                assert result.is_error and "contains a secret" in result.content[0].text, (tool, result)
    asyncio.run(mcp())
    assert parts.everything() == "", parts.everything()
