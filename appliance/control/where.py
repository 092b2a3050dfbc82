"""Where a running appliance is: one file, ``<state>/control.json`` (mode 600).

Two writers fill it, each its own part:

* `appliance up` (and a held `appliance up`) :func:`announce` the tree before the controller
  starts: ``url`` (the control port it chose), ``display``, ``pid``, ``config``,
  ``runtime_dir``, ``held``, ``started``;
* the control server :func:`publish`-es its ``token`` (and its ``server_pid``) once it listens,
  and takes them back out (:func:`withdraw`) when it closes. `appliance live` alone (no
  `appliance up`) writes the whole file itself and removes it.

Every reader goes through :func:`find`: the CLI (``appliance say/show/status/console/mcp``),
:class:`appliance.control.client.ControlClient`, the probes (:mod:`appliance.control.probe`)
and the tests. When nothing runs with the config's state folder, the appliance that
`appliance rehearse` started (its state is ``<state>/rehearsal/state/``) is found instead, so a
newcomer's ``appliance rehearse`` then ``appliance status`` works.

This module imports only the standard library: the probes load nothing else.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ApplianceError
from ..core.files import StateLayout, write_json


class NotRunning(ApplianceError):
    """No appliance has announced itself in this state folder (nor a rehearsal in it)."""


@dataclass(frozen=True)
class Where:
    """What :func:`find` read: the control API's URL, its bearer token (None until the control
    server listens), and the tree's display (None for `appliance live` alone or a hold)."""

    path: Path
    url: str
    token: str | None
    display: str | None
    held: bool
    data: dict[str, Any]

    def __repr__(self) -> str:  # never the token
        return f"Where({self.url!r}, display={self.display!r}, held={self.held})"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ApplianceError(f"{path}: unreadable ({exc})",
                             fix="remove it if no appliance runs there") from None
    return data if isinstance(data, dict) else None


def candidates(state_dir: Path) -> list[Path]:
    """The files :func:`find` looks at, in order: the state folder's, then its rehearsal's."""
    layout = StateLayout(Path(state_dir))
    return [layout.control_json, StateLayout(layout.rehearsal_state).control_json]


def find(state_dir: Path) -> Where:
    """The running appliance whose state is ``state_dir`` (else the rehearsal there)."""
    for path in candidates(state_dir):
        data = _read(path)
        if data and isinstance(data.get("url"), str):
            token = data.get("token")
            return Where(path=path, url=data["url"], token=token if isinstance(token, str) and token else None,
                         display=data.get("display") if isinstance(data.get("display"), str) else None,
                         held=bool(data.get("held")), data=data)
    raise NotRunning(f"the appliance is not running with state in {state_dir} (no control.json there "
                     "or in its rehearsal/state)",
                     fix="start it with `appliance up` (or `appliance rehearse`), or pass the config it runs with")


def announce(state_dir: Path, *, port: int, display: str | None, config: Path,
             runtime_dir: Path | None = None, held: bool = False) -> Path:
    """`appliance up`: where this appliance's display and control API are (before they run)."""
    path = StateLayout(Path(state_dir)).control_json
    write_json(path, {"url": f"http://127.0.0.1:{port}", "display": display, "pid": os.getpid(),
                      "config": str(config), "runtime_dir": str(runtime_dir) if runtime_dir else None,
                      "held": held, "started": round(time.time(), 1)})
    return path


def publish(state_dir: Path, *, url: str, token: str) -> Path:
    """The control server, once it listens: its token joins what `appliance up` announced
    (the same URL), or the whole file is written (`appliance live` alone, or a stale file)."""
    path = StateLayout(Path(state_dir)).control_json
    try:
        data = _read(path) or {}
    except ApplianceError:
        data = {}
    if data.get("url") != url:
        data = {"url": url, "display": None, "pid": os.getpid(), "held": False, "started": round(time.time(), 1)}
    write_json(path, {**data, "token": token, "server_pid": os.getpid()})
    return path


def withdraw(state_dir: Path) -> None:
    """The control server, closing: its token leaves the file; the file goes with it when this
    process also announced it (or nobody else did)."""
    path = StateLayout(Path(state_dir)).control_json
    try:
        data = _read(path)
    except ApplianceError:
        return
    if not data or data.get("server_pid") != os.getpid():
        return
    if data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)
        return
    write_json(path, {k: v for k, v in data.items() if k not in ("token", "server_pid")})


def remove(state_dir: Path) -> None:
    """`appliance up`, ending: the file goes if this process announced it."""
    path = StateLayout(Path(state_dir)).control_json
    try:
        data = _read(path)
    except ApplianceError:
        return
    if data and data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)
