"""Operator surfaces against the real appliance (`appliance up` on the sandbox, standing by with
``control.autostart: false`` and ``chat.responder: external``, so the operator is the brain):

* MCP over stdio (`appliance mcp`, the SDK's own client): list tools, see the standby, go live
  (no stream/start before it), read a viewer's comment with name and id, reply, say, read the
  screenshot resource.
* the console in a real headless Chromium (selenium): the one-time login URL, a sandbox comment
  on the page within 2 s, the say button and its utterance_started event, a scene switch seen
  in the preview; requests without the cookie, with a foreign Host or without the CSRF token
  are refused.
* MCP over streamable HTTP at /mcp (same bearer token): list tools, go live (already: nothing
  started twice), read a comment, reply, say, stop (the appliance exits 0).

The three share one appliance (module fixture) and run in this order; each stands on its own
(go_live is idempotent) except that the last one stops the appliance.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.browser import chromium
from tests.support.media import require
from tests.support.sandbox import NGINX_MISSING, entry_name
from tests.support.show import LiveAppliance
from tests.support.tree import REPO, short_tmpdir, wait_until

pytestmark = pytest.mark.skipif(NGINX_MISSING is not None, reason=NGINX_MISSING or "")

TOOLS = {"status", "go_live", "stop", "say", "voice", "show", "scene", "chat_send", "read_chat", "reply",
         "viewers", "terminal"}

@pytest.fixture(scope="module")
def app() -> Iterator[LiveAppliance]:
    require("ffmpeg", "espeak-ng", "paplay", "Xvfb", "pulseaudio", "tmux")
    from appliance.sandbox import Sandbox
    base = short_tmpdir("apop-")
    try:
        with Sandbox(port=0, rtmp=True, viewer_interval=0) as sb, LiveAppliance(
                sb, base, name="OperatorAgent",
                extra={"control": {"autostart": False}, "chat": {"responder": "external"}}) as appliance:
            appliance.start(live=False)
            yield appliance
    finally:
        shutil.rmtree(base, ignore_errors=True)


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


def plain(text: Any) -> Any:
    """Viewer text as MCP hands it out, without its fence (``<viewer-text-NONCE>...``)."""
    return re.sub(r"</?viewer-text-[0-9a-f]+>", "", text) if isinstance(text, str) else text


async def read_until(client: Any, cursor: int | None, name: str, timeout: float = 10.0) -> tuple[dict, int]:
    """read_chat until an item from viewer ``name`` shows up: (item, cursor)."""
    deadline = time.monotonic() + timeout
    while True:
        got = structured(await client.call_tool("read_chat", {"cursor": cursor} if cursor is not None else {}))
        cursor = got["cursor"]
        for item in got["items"]:
            if plain(item.get("name")) == name:
                assert item["name"] != name, "viewer names reach the agent fenced as data"
                return item, cursor
        assert time.monotonic() < deadline, f"no comment from {name} in read_chat"
        await asyncio.sleep(0.2)


def chat_texts(app: LiveAppliance) -> list[str]:
    return [c.text for c in app.client.comments(app.user)]


def stream_starts(app: LiveAppliance) -> int:
    return sum(1 for r in app.sb.requests() if entry_name(r) == "agent/stream/start")


async def converse(app: LiveAppliance, client: Any, who: str) -> None:
    """The part both transports do once live: a viewer's comment read, replied to, and a say."""
    cursor = structured(await client.call_tool("read_chat", {}))["cursor"]
    app.sb.post_comment(text=f"hello from {who}, what are you building?", username=who, user_db_id=app.user)
    item, cursor = await read_until(client, cursor, who)
    assert item["user_id"] and item["id"] and item["kind"] == "chat" and who in item["text"]
    answer = f"a console for {who}, live"
    replied = structured(await client.call_tool("reply", {"message_id": item["id"], "text": answer}))
    assert replied["sent"] is True
    wait_until(lambda: answer in chat_texts(app), 10, "the reply in the sandbox's chat")
    said = structured(await client.call_tool("say", {"text": f"Thanks {who}."}))
    assert said["id"] and said["status"] in ("queued", "speaking")


# --- MCP over stdio -----------------------------------------------------------------------------

def test_mcp_over_stdio_goes_live_reads_replies_and_says(app: LiveAppliance) -> None:
    from mcp import Client, StdioServerParameters

    async def run() -> None:
        params = StdioServerParameters(command=sys.executable,
                                       args=["-m", "appliance", "mcp", "--config", str(app.config)],
                                       env=dict(os.environ), cwd=str(REPO))
        async with Client(params, read_timeout_seconds=150) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) >= TOOLS
            assert all(len(t.description or "") > 80 for t in tools.values())  # written for a model
            status = structured(await client.call_tool("status", {}))
            if status["state"] != "live":  # run alone or first: the appliance stands by
                assert status["waiting"]["reason"] == "standby" and stream_starts(app) == 0
            live = structured(await client.call_tool("go_live", {"wait_s": 90}))
            assert live["state"] == "live" and live["is_live"] is True, live
            assert stream_starts(app) == 1
            await converse(app, client, "stdioviewer")
            shot = await client.read_resource("appliance://screenshot")
            blob = shot.contents[0]
            assert blob.mime_type == "image/jpeg" and len(blob.blob) > 1000
            viewers = structured(await client.call_tool("viewers", {}))
            assert any(plain(v["name"]) == "stdioviewer" for v in viewers["viewers"])
            screen = structured(await client.call_tool("terminal", {"text": "echo mcp-$((40+2))"}))
            def pane() -> str | None:
                text = app.cli("terminal", "--lines", "60")
                return text if "mcp-42" in text else None
            shell = wait_until(pane, 5, "the command's output")
            assert "screen" in screen
            # viewers' chat is shown (log pane) but never typed into the shell pane
            assert "stdioviewer" not in shell and "what are you building" not in shell
    asyncio.run(run())


# --- the console in a real browser ---------------------------------------------------------------

@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    require("chromium", "chromedriver", "tesseract", "ffmpeg")
    driver = chromium(Path(tempfile.mkdtemp(dir=tmp_path)))
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, element_id).text


def preview_text(driver: Any, tmp_path: Path) -> str:
    """What tesseract reads in the preview image as the browser shows it."""
    from selenium.webdriver.common.by import By
    png = tmp_path / "preview.png"
    png.write_bytes(driver.find_element(By.ID, "preview").screenshot_as_png)
    big = tmp_path / "preview-big.png"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(png),
                    "-vf", "format=gray,scale=iw*2:ih*2:flags=bicubic", "-y", str(big)], check=True, timeout=30)
    return subprocess.run(["tesseract", str(big), "-"], capture_output=True, text=True, timeout=60).stdout


def test_console_in_a_browser(app: LiveAppliance, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    url = re.search(r"(http://127\.0\.0\.1:\d+/console/login\?ticket=\S+)", app.cli("console")).group(1)
    base = url.split("/console/")[0]
    # the page without logging in, and a used ticket, are refused
    assert requests.get(f"{base}/console", timeout=5).status_code == 401
    browser.get(url)
    wait_until(lambda: text_of(browser, "agent") == "OperatorAgent", 10, "the console page")
    name = f"appliance_session_{base.rsplit(':', 1)[1]}"  # the cookie is this appliance's own
    cookie = browser.get_cookie(name)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert requests.get(url, timeout=5, allow_redirects=False).status_code == 403  # one use only
    if text_of(browser, "state") != "live":
        browser.find_element(By.ID, "go-live").click()
        wait_until(lambda: text_of(browser, "state") == "live", 90, "live after the Go live button")

    # a viewer's comment appears within 2 s (sandbox -> Socket.IO -> event bus -> SSE -> the page)
    time.sleep(1.0)  # the event stream is open
    posted = time.monotonic()
    app.sb.post_comment(text="is this the console?", username="browserviewer", user_db_id=app.user)
    wait_until(lambda: "is this the console?" in text_of(browser, "chat"), 5, "the comment on the page")
    seen_s = time.monotonic() - posted
    assert seen_s < 2.0, f"the comment took {seen_s:.2f} s to appear"

    # say: the utterance starts (the event on the page)
    browser.find_element(By.ID, "say-text").send_keys("Hello from the console")
    browser.find_element(By.ID, "say-btn").click()
    wait_until(lambda: "utterance_started: Hello from the console" in text_of(browser, "events"), 15,
               "the utterance_started event")

    # scene: the preview the browser shows changes to the brb scene
    wait_until(lambda: text_of(browser, "preview-age"), 10, "a preview frame")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, 'button[data-scene="brb"]'), 10, "scene buttons")
    assert "right back" not in preview_text(browser, tmp_path).lower()
    browser.find_element(By.CSS_SELECTOR, 'button[data-scene="brb"]').click()
    wait_until(lambda: "right back" in preview_text(browser, tmp_path).lower(), 15, "the brb scene in the preview")
    browser.find_element(By.CSS_SELECTOR, 'button[data-scene="live"]').click()

    # refused: no cookie; a foreign Host (DNS rebinding) even with the cookie; no CSRF token
    jar = {name: cookie["value"]}
    assert requests.get(f"{base}/console/state", timeout=5).status_code == 401
    assert requests.get(f"{base}/console/state", cookies=jar, timeout=5).status_code == 200
    assert requests.get(f"{base}/console/state", cookies=jar, timeout=5,
                        headers={"Host": "evil.example:80"}).status_code == 421
    assert requests.post(f"{base}/say", json={"text": "csrf"}, cookies=jar, timeout=5).status_code == 403
    assert requests.post(f"{base}/console/ticket", json={}, cookies=jar, timeout=5).status_code == 401
    assert requests.post(f"{base}/say", json={"text": "no cookie"}, timeout=5).status_code == 401


# --- MCP over /mcp --------------------------------------------------------------------------------

def test_mcp_over_http_reads_replies_says_and_stops(app: LiveAppliance) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    control = app.control
    assert control is not None
    url = control.url + "/mcp"
    assert requests.post(url, json={}, timeout=5).status_code == 401
    assert requests.post(url, json={}, timeout=5, headers={"Authorization": f"Bearer {control.token}",
                                                           "Host": "evil.example"}).status_code == 421

    async def run() -> None:
        async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {control.token}"},
                                       timeout=httpx2.Timeout(150)) as http,
                    Client(streamable_http_client(url, http_client=http), read_timeout_seconds=150) as client):
            assert {t.name for t in (await client.list_tools()).tools} >= TOOLS
            starts = stream_starts(app)
            live = structured(await client.call_tool("go_live", {"wait_s": 90}))
            assert live["state"] == "live"
            assert stream_starts(app) == max(starts, 1)  # already live: nothing started again
            await converse(app, client, "httpviewer")
            stopping = structured(await client.call_tool("stop", {}))
            assert stopping == {"stopping": True}
    asyncio.run(run())
    assert app.proc is not None
    assert app.proc.wait(60) == 0, app.tail()
    assert any(entry_name(r) == "agent/stream/stop" for r in app.sb.requests())
