"""The one client of the control API: :class:`ControlClient` (the CLI, ``appliance mcp``, the
tests and the benches use it).

It is a :class:`appliance.control.protocols.Commands` over HTTP, so the MCP tools run the same
way against the controller in-process (``/mcp``) or through this client (stdio). It finds the
appliance through :func:`appliance.control.where.find` (``<state>/control.json``, else the
rehearsal's) and looks again when the API stops answering or refuses the token, so a client
outlives a restarted appliance (new port, new token) and may start before it. A request that
may have reached the server is never sent twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from ..core.errors import ApplianceError, InputError, NotFoundError
from .where import Where, find

Json = dict[str, Any]
DEFAULT_TIMEOUT_S = 30.0
LONG_TIMEOUT_S = 150.0  # say with wait, go_live with a wait: the server bounds both below this


class ControlClient:
    """:class:`~appliance.control.protocols.Commands` over the running appliance's control API."""

    def __init__(self, locate: Callable[[], Where | tuple[str, str]], *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.locate, self.timeout = locate, timeout
        self._where: tuple[str, str] | None = None
        self._session = requests.Session()
        self._session.trust_env = False  # 127.0.0.1 only: never through a proxy

    @classmethod
    def from_state(cls, state_dir: Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> ControlClient:
        """The appliance whose state is ``state_dir`` (or the rehearsal there); raises
        :class:`~appliance.control.where.NotRunning` at once when there is none."""
        client = cls(lambda: find(Path(state_dir)), timeout=timeout)
        client._address()
        return client

    @classmethod
    def at(cls, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> ControlClient:
        """A client of the API at ``url`` with ``token`` (no looking up)."""
        return cls(lambda: (url, token), timeout=timeout)

    def __repr__(self) -> str:  # never the token
        return f"ControlClient({self._where[0] if self._where else '?'!r})"

    def _address(self) -> tuple[str, str]:
        if self._where is None:
            found = self.locate()
            if isinstance(found, Where):
                if found.token is None:
                    raise ApplianceError(f"the appliance at {found.url} is starting: its control API is not "
                                         "listening yet", fix="try again in a few seconds")
                self._where = (found.url.rstrip("/"), found.token)
            else:
                self._where = (found[0].rstrip("/"), found[1])
        return self._where

    @property
    def url(self) -> str:
        return self._address()[0]

    @property
    def token(self) -> str:
        return self._address()[1]

    # -- one request --

    def request(self, method: str, path: str, body: Json | None = None, *, params: Json | None = None,
                timeout: float | None = None, ok: tuple[int, ...] = ()) -> requests.Response:
        """The response to one request; an error status (unless in ``ok``) raises the
        :class:`ApplianceError` the server's ``error`` names (400: InputError, 404: NotFoundError)."""
        for attempt in (1, 2):
            url, token = self._address()
            try:
                response = self._session.request(method, url + path, json=body, params=params,
                                                 timeout=timeout or self.timeout,
                                                 headers={"Authorization": f"Bearer {token}"})
                break
            except requests.ConnectionError:  # not connected, so not sent: safe to look again
                self._where = None
                if attempt == 2:
                    raise ApplianceError(f"the appliance's control API at {url} does not answer",
                                         fix="is `appliance up` running? see its log") from None
            except requests.RequestException as exc:  # sent, maybe done: never sent twice
                raise ApplianceError(f"{method} {path}: no answer from the appliance ({type(exc).__name__})") from None
        if response.status_code == 401:
            self._where = None  # a restarted appliance has a new token: the next call looks again
        if response.status_code >= 400 and response.status_code not in ok:
            raise _error(method, path, response)
        return response

    def call(self, method: str, path: str, body: Json | None = None, *, params: Json | None = None,
             timeout: float | None = None) -> Any:
        """The decoded answer: JSON as Python data, anything else as text."""
        response = self.request(method, path, body, params=params, timeout=timeout)
        if "json" in response.headers.get("Content-Type", ""):
            try:
                return response.json()
            except ValueError:
                pass
        return response.text

    def _json(self, method: str, path: str, body: Json | None = None, *, params: Json | None = None,
              timeout: float | None = None) -> Json:
        data = self.call(method, path, body, params=params, timeout=timeout)
        return data if isinstance(data, dict) else {"result": data}

    # -- Commands --

    def health(self) -> Json:
        data = self.request("GET", "/health", ok=(503,)).json()
        return data if isinstance(data, dict) else {"alive": False}

    def ready(self) -> tuple[bool, str]:
        response = self.request("GET", "/ready", ok=(503,))
        try:
            reason = str(response.json().get("reason", ""))
        except (ValueError, AttributeError):
            reason = response.text[:200]
        return response.status_code == 200, reason

    def status(self) -> Json:
        return self._json("GET", "/status")

    def metrics(self) -> str:
        return str(self.call("GET", "/metrics"))

    def go_live(self, wait_s: float = 60.0) -> Json:
        return self._json("POST", "/go_live", {"wait_s": wait_s}, timeout=max(0.0, wait_s) + DEFAULT_TIMEOUT_S)

    def stop(self) -> Json:
        return self._json("POST", "/stop", {})

    def say(self, text: str, *, wait: bool = False, priority: str = "operator") -> Json:
        return self._json("POST", "/say", {"text": text, "wait": wait, "priority": priority},
                          timeout=LONG_TIMEOUT_S if wait else None)

    def voice(self, *, flush: bool = False, interrupt: bool = False, volume: float | None = None,
              mute: bool | None = None) -> Json:
        return self._json("POST", "/voice", {"flush": flush, "interrupt": interrupt, "volume": volume, "mute": mute})

    def speech(self) -> Json:
        return self._json("GET", "/speech")

    def show(self, text: str) -> Json:
        return self._json("POST", "/show", {"text": text})

    def scene(self, name: str) -> Json:
        return self._json("POST", "/scene", {"name": name})

    def scene_state(self) -> Json:
        return self._json("GET", "/scene")

    def screenshot(self) -> bytes:
        return self.request("GET", "/screenshot").content

    def terminal(self, *, text: str | None = None, enter: bool = True, keys: list[str] | None = None,
                 lines: int = 40) -> Json:
        return self._json("POST", "/terminal", {"text": text, "enter": enter, "keys": keys, "lines": lines})

    def direction(self, text: str, *, source: str = "api") -> Json:
        return self._json("POST", "/direction", {"text": text, "source": source})

    def chat(self, message: str) -> Json:
        return self._json("POST", "/chat", {"message": message})

    def reply(self, message_id: str, text: str, routes: list[str] | None = None) -> Json:
        return self._json("POST", "/reply", {"message_id": message_id, "text": text,
                                             **({"routes": routes} if routes else {})})

    def read_chat(self, since: int | None = None, limit: int = 50) -> Json:
        return self._json("GET", "/chat", params={"limit": limit, **({"since": since} if since is not None else {})})

    def viewers(self, limit: int = 20) -> Json:
        return self._json("GET", "/viewers", params={"limit": limit})

    def chat_to(self, name: str, message: str) -> Json:
        return self._json("POST", "/chat_to", {"name": name, "message": message})


def _error(method: str, path: str, response: requests.Response) -> ApplianceError:
    try:
        data = response.json()
        error = data.get("error", response.text) if isinstance(data, dict) else response.text
    except ValueError:
        error = response.text[:300]
    message = f"{method} {path}: {error}"
    if response.status_code == 404:
        return NotFoundError(message)
    if response.status_code in (400, 413):
        return InputError(message)
    return ApplianceError(message)
