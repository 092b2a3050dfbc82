"""`appliance probe`: the container's and Kubernetes' health check, as cheap as a Python
process can be.

The probe runs every few seconds per agent (Kubernetes' liveness and startup probes), so it
imports only the standard library (no pydantic, requests or the config): it reads where the
appliance runs (:func:`appliance.control.where.find`) and asks ``/health`` or ``/ready``
(neither needs the token) with ``http.client``. ``appliance probe --state DIR`` takes this
path straight from :func:`appliance.cli.main`; without ``--state`` the config is loaded to
find the state folder.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .where import find

PROBE_TIMEOUT_S = 4.0


def probe(kind: str, state_dir: Path, *, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, dict[str, Any]]:
    """GET /health or /ready of the appliance whose state is in ``state_dir``: (200?, body)."""
    try:
        url = find(state_dir).url
    except Exception as exc:  # not running, unreadable: a failed probe that says why
        return False, {"error": str(exc)}
    path = "/ready" if kind == "ready" else "/health"
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": f"127.0.0.1:{parts.port}"})
        response = connection.getresponse()
        raw = response.read(65536)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return False, {"error": f"{url}{path} does not answer ({type(exc).__name__})"}
    finally:
        connection.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"body": raw[:200].decode("utf-8", "replace")}
    return status == 200, body if isinstance(body, dict) else {"body": body}


def main(kind: str, state_dir: Path) -> int:
    """Print the answer as one JSON line; exit status 0 when it was 200."""
    ok, body = probe(kind, state_dir)
    print(json.dumps(body))
    return 0 if ok else 1
