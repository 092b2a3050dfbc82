"""The console page in Debian's Chromium (selenium) when the appliance refuses it: a 503 on its
state and on its event feed shows a visible "retrying" line, and the page recovers by itself
once the appliance answers again (an EventSource that got a 503 used to stay closed for good)."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from appliance.control.api import ControlServer
from appliance.control.events import EventBus
from appliance.core.errors import ApplianceError
from tests.support.browser import chromium
from tests.support.control import FakeCommands
from tests.support.media import require
from tests.support.tree import wait_until


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    require("chromium", "chromedriver")
    driver = chromium(Path(tempfile.mkdtemp(dir=tmp_path)))
    try:
        yield driver
    finally:
        driver.quit()


def banner(driver: Any) -> str:
    from selenium.webdriver.common.by import By
    element = driver.find_element(By.ID, "offline")
    return element.text if element.is_displayed() else ""


def test_the_console_says_it_retries_after_a_503_and_recovers(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    commands = FakeCommands()
    commands.fail["status"] = ApplianceError("the appliance is starting")
    bus = EventBus()
    server = ControlServer(commands, state_dir=tmp_path, port=0, bus=bus, session_hours=1, max_event_streams=1,
                           stream_min_age_s=3600).start()
    squatter = socket.create_connection(("127.0.0.1", server.port))
    try:
        squatter.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n\r\n"
                         .encode())  # the only event slot is taken: the page's feed gets 503
        wait_until(lambda: len(server.streams) == 1, 5, "the squatting stream")
        path = requests.post(server.url + "/console/ticket", json={}, timeout=5,
                             headers={"Authorization": f"Bearer {server.token}"}).json()["path"]
        browser.get(server.url + path)
        wait_until(lambda: "503 the appliance is starting" in banner(browser), 10, "the state's 503 on the page")
        wait_until(lambda: "event feed: refused or unreachable (retrying in" in banner(browser), 10,
                   "the event feed's 503 on the page")
        assert browser.find_element(By.ID, "offline").get_attribute("role") == "alert"

        del commands.fail["status"]  # the appliance answers again
        squatter.close()  # and the event slot is free
        wait_until(lambda: banner(browser) == "", 40, "the page to recover by itself")
        wait_until(lambda: browser.find_element(By.ID, "state").text == "live", 10, "the state shown")
        bus.publish("chat", {"id": "c1", "user": {"name": "carol"}, "text": "back again?"})
        wait_until(lambda: "back again?" in browser.find_element(By.ID, "chat").text, 10, "an event after recovery")
    finally:
        squatter.close()
        server.close()
