"""Fixtures and helpers for tests that run against the sandbox (a local retake.tv).

Fixtures (import them into conftest.py):
  * ``sandbox``        — a running :class:`Sandbox` without RTMP (no nginx needed), simulator off.
  * ``rtmp_sandbox``   — the same with the nginx-rtmp ingest; skipped only if nginx or its RTMP
                         module is truly absent (the reason names the Debian packages).
  * ``sandbox_agent``  — an agent registered in ``sandbox`` (:class:`SandboxAgent`).

Helpers: ``register_agent(sb, ...)``, ``publish_test_stream(url, key, seconds)`` (FFmpeg lavfi
testsrc + sine, h264/aac over RTMP), ``make_png(w, h)``, ``NGINX_MISSING`` / ``FFMPEG_MISSING``
(skip reasons or None), ``requires_nginx`` / ``requires_ffmpeg`` markers.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import requests

from appliance.sandbox import Sandbox
from appliance.sandbox.rtmp import IngestError, find_nginx


def _nginx_missing() -> str | None:
    try:
        find_nginx()
    except IngestError as exc:
        return str(exc)
    return None


NGINX_MISSING = _nginx_missing()
FFMPEG_MISSING = None if shutil.which("ffmpeg") and shutil.which("ffprobe") else \
    "ffmpeg/ffprobe not found: install the Debian package `ffmpeg`"
requires_nginx = pytest.mark.skipif(NGINX_MISSING is not None, reason=NGINX_MISSING or "")
requires_ffmpeg = pytest.mark.skipif(FFMPEG_MISSING is not None, reason=FFMPEG_MISSING or "")

WALLET = "11111111111111111111111111111111"  # the Solana system program: valid base58, 32 bytes


@dataclass
class SandboxAgent:
    name: str
    access_token: str
    user_id: str
    agent_id: str
    base_url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def get(self, path: str, **kw: object) -> requests.Response:
        return requests.get(f"{self.base_url}/{path}", headers=self.headers, timeout=10, **kw)  # type: ignore[arg-type]

    def post(self, path: str, **kw: object) -> requests.Response:
        return requests.post(f"{self.base_url}/{path}", headers=self.headers, timeout=10, **kw)  # type: ignore[arg-type]


def register_agent(sb: Sandbox, name: str | None = None, *, ticker: str = "TEST",
                   verified: bool = False) -> SandboxAgent:
    """Register (and optionally verify, through the real endpoints) an agent."""
    name = name or f"Agent{uuid.uuid4().hex[:8]}"
    body = {"agent_name": name, "agent_description": "test agent", "image_url": "https://example.com/a.png",
            "wallet_address": WALLET, "ticker": ticker}
    resp = requests.post(f"{sb.base_url}/agent/register", json=body, timeout=10)
    resp.raise_for_status()
    data = resp.json()
    agent = SandboxAgent(name, data["access_token"], data["userDbId"], data["agent_id"], sb.base_url)
    if verified:
        agent.post("agent/prepare-verify").raise_for_status()
        agent.post("agent/verify", json={"tweet_url": "https://x.com/operator/status/1234567890"}).raise_for_status()
    return agent


def ffmpeg_publish_cmd(url: str, key: str, seconds: float = 3.0) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30",
            "-c:a", "aac", "-b:a", "64k", "-f", "flv", f"{url}/{key}"]


def publish_test_stream(url: str, key: str, seconds: float = 3.0, *, background: bool = False
                        ) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """Push ``seconds`` of testsrc + sine to ``url/key``; ``background=True`` returns the Popen."""
    cmd = ffmpeg_publish_cmd(url, key, seconds)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20)


def make_png(width: int = 8, height: int = 6) -> bytes:
    """A small valid RGB PNG."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 30 % 256, y * 40 % 256, 128)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(port=0, rtmp=False, viewer_interval=0) as sb:
        yield sb


@pytest.fixture
def rtmp_sandbox() -> Iterator[Sandbox]:
    if NGINX_MISSING is not None:
        pytest.skip(NGINX_MISSING)
    with Sandbox(port=0, rtmp=True, viewer_interval=0) as sb:
        yield sb


@pytest.fixture
def sandbox_agent(sandbox: Sandbox) -> SandboxAgent:
    return register_agent(sandbox)


def entry_name(entry: dict) -> str:
    """'agent/stream/start', 'RTMP publish', ... for a sandbox request-log entry."""
    return entry.get("event") or entry["path"].split("/api/v1/")[-1].strip("/")


def entry_time(entry: dict) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
