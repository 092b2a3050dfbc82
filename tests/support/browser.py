"""Debian's Chromium driven by selenium (chromium-driver): the one way the tests and benches open
a page as a viewer or an operator would."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000"]


def chromium(user_data: Path, *extra_flags: str) -> Any:
    """A headless Chromium with its own profile folder ``user_data`` (the caller quits it)."""
    from selenium import webdriver
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (*CHROME_FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data}")
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
