"""`appliance probe`: the container's and Kubernetes' health check, as cheap as a Python
process can be.

The probe runs every few seconds per agent (Kubernetes' liveness and startup probes), so it
imports only the standard library, and little of it (no pydantic, requests, the config, not
even ``http.client``): it reads where the appliance runs (:func:`appliance.control.where.find`)
and asks ``/health`` or ``/ready`` (neither needs the token) in one HTTP/1.0 exchange on a
socket. ``appliance probe --state DIR`` takes this
path straight from :func:`appliance.cli.main`; without ``--state`` the config is loaded to
find the state folder.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

from .where import find

PROBE_TIMEOUT_S = 4.0


def probe(kind: str, state_dir: Path, *, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, dict[str, Any]]:
    """GET /health or /ready of the appliance whose state is in ``state_dir``: (200?, body)."""
    try:
        url = find(state_dir).url
    except Exception as exc:  # not running, unreadable: a failed probe that says why
        return False, {"error": str(exc)}
    path = "/ready" if kind == "ready" else "/health"
    address = re.fullmatch(r"http://([0-9.]+|localhost):([0-9]{1,5})/?", url)
    if address is None:
        return False, {"error": f"{url}: not an http://host:port of this machine"}
    host, port = address[1], int(address[2])
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            raw = b""
            while len(raw) < 65536 and (chunk := sock.recv(65536)):
                raw += chunk
    except OSError as exc:
        return False, {"error": f"{url}{path} does not answer ({type(exc).__name__})"}
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line = re.match(rb"HTTP/1\.[01] ([0-9]{3})", head)
    if status_line is None:
        return False, {"error": f"{url}{path}: not an HTTP answer ({head[:60]!r})"}
    status = int(status_line[1])
    try:
        body = json.loads(payload)
    except ValueError:
        body = {"body": payload[:200].decode("utf-8", "replace")}
    return status == 200, body if isinstance(body, dict) else {"body": body}


def main(kind: str, state_dir: Path) -> int:
    """Print the answer as one JSON line; exit status 0 when it was 200."""
    ok, body = probe(kind, state_dir)
    print(json.dumps(body))
    return 0 if ok else 1
