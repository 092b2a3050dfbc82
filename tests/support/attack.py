"""The attacker of issue 17, played by a test: the commands that printed secrets on stream, typed
through the operator's real paths — the console (``POST /terminal`` with a console session: a
one-time login URL, its cookie, the CSRF token of the page) and the MCP ``terminal`` tool (the
SDK's own client over stdio) — and the places no secret may be found: the pane, the stream's
recording (OCR of decoded frames), any process's environment, what went over the network.

Shared by tests/e2e/test_secrets.py (the bare tree, as root) and the image's tests.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


# the RTMP and simulcast keys in FFmpeg's argv (gone since issue 17.6's Publisher); -ww: in a pipe ps
# cuts its lines at 80 columns
PS_ATTACK = "ps -ww -eo args | grep rtmp"


def attack_commands(*, state: str, controller_pid: int, mount: str = "/run/secrets") -> list[str]:
    """Issue 17's commands (its ``../credentials.json``: the shell's folder used to be
    ``<state>/workspace``), the same aimed at where things are now, and a few broader ones."""
    return [
        "grep -o 'rtk[^\"]*' ../credentials.json",
        f"grep -o 'rtk[^\"]*' {state}/credentials.json",
        f"grep CONTROL {state}/control.json; grep -h token {state}/*.json",
        f"tr '\\0' '\\n' </proc/{controller_pid}/environ",
        "tr '\\0' '\\n' </proc/1/environ | grep -i -E 'token|key|auth'",
        f"ls -la {mount}; cat {mount}/*",
        "cat /proc/*/environ 2>&1 | tr '\\0' '\\n' | grep -i -E 'token|key|auth' | head -5",
        "ls /tmp/*/secrets; cat /tmp/*/secrets/* /tmp/*/Xauthority",
        PS_ATTACK,
    ]




class ConsoleTerminal:
    """The console's way in: redeem a one-time login path for a session cookie, read the CSRF
    token from the page, then ``POST /terminal`` like the page's own script."""

    def __init__(self, base_url: str, login_path: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False
        page = self.http.get(urljoin(self.base + "/", login_path.lstrip("/")), timeout=10)
        page.raise_for_status()
        found = CSRF.search(page.text)
        if not found:
            raise AssertionError(f"no CSRF token on the console page ({page.status_code})")
        self.csrf = found.group(1)

    def type(self, text: str, lines: int = 200) -> str:
        response = self.http.post(f"{self.base}/terminal", json={"text": text, "lines": lines}, timeout=15,
                                  headers={"X-CSRF-Token": self.csrf, "Origin": self.base})
        response.raise_for_status()
        return str(response.json().get("screen", ""))

    def read(self, lines: int = 200) -> str:
        response = self.http.post(f"{self.base}/terminal", json={"lines": lines}, timeout=15,
                                  headers={"X-CSRF-Token": self.csrf, "Origin": self.base})
        response.raise_for_status()
        return str(response.json().get("screen", ""))


def mcp_type(params: Any, commands: Iterable[str], *, settle_s: float = 1.0) -> list[str]:
    """Type each command with the MCP tool ``terminal`` (the SDK's client over stdio, ``params``:
    its StdioServerParameters); the screen after each."""
    from mcp import Client

    async def run() -> list[str]:
        screens = []
        async with Client(params, read_timeout_seconds=120) as client:
            for command in commands:
                result = await client.call_tool("terminal", {"text": command, "lines": 200})
                assert not result.is_error, result.content
                await asyncio.sleep(settle_s)
                result = await client.call_tool("terminal", {"lines": 200})
                screens.append(str(result.structured_content.get("screen", "")))
        return screens

    return asyncio.run(run())


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text)).casefold()


def leaked(text: str | bytes, secrets: Mapping[str, str], *, window: int = 12) -> list[str]:
    """The names of ``secrets`` whose value is in ``text``: whole, or any ``window`` characters
    of it in a row once separators are gone (what an OCR or a wrapped line leaves)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    compact = _compact(text)
    names = []
    for name, value in secrets.items():
        core = _compact(value)
        if value in text or any(core[i:i + window] in compact for i in range(0, max(1, len(core) - window + 1))):
            names.append(name)
    return names


def environ_leaks(environs: Mapping[int, bytes], secrets: Mapping[str, str]) -> dict[int, list[str]]:
    """pid -> the secrets in its /proc/<pid>/environ (only the pids that carry one)."""
    found = {pid: leaked(raw, secrets, window=len(min(secrets.values(), key=len))) for pid, raw in environs.items()}
    return {pid: names for pid, names in found.items() if names}


def read_environs(pids: Iterable[int]) -> dict[int, bytes]:
    out = {}
    for pid in pids:
        try:
            out[pid] = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
    return out
