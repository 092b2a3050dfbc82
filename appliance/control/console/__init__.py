"""The console: one web page, served by the control API on 127.0.0.1, where a person sees what
viewers see and steps in (``appliance/control/console/index.html``, plain JS, no build step).

Reaching it: the control API listens on 127.0.0.1 only; from a laptop, tunnel to it
(``ssh -L 8787:127.0.0.1:<port> host`` or ``kubectl port-forward pod/<pod> 8787:<port>``) and
open the URL ``appliance console`` prints, with the port changed to the local one.

Who may use it:

* ``appliance console`` (holding the control token) asks ``POST /console/ticket`` for a
  **one-time login URL** (a random ticket, valid 120 s, usable once). Opening it trades the
  ticket for a **session cookie** (random, ``HttpOnly``, ``SameSite=Strict``, ``Path=/``, lasting
  ``control.session_hours``) and redirects to the page. The control token itself never
  reaches the browser. The cookie's name is the appliance's own (``appliance_session_<port>``):
  cookies are not kept apart by port, so with one name for all, logging into a second appliance
  on the same host logged the first one out.
* ``POST /console/logout`` ends the session; its open event stream closes within a second.
* Every state-changing request made with the cookie carries the session's **CSRF token** in
  ``X-CSRF-Token`` (the page reads it from its own HTML); a request without it is refused
  (403), and so is one whose ``Origin`` is not the page's own.
* The **Host header** must name a loopback host (``127.0.0.1``, ``localhost``, ``[::1]``; any
  port, for tunnels): a page on an attacker's domain that rebinds its DNS to 127.0.0.1 sends
  its own name as Host and is refused (421) — for every route, bearer or cookie.

:class:`History` samples the status every 5 s for the page's 15-minute sparklines and keeps
the last distinct errors.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("appliance.console")

STATIC = Path(__file__).resolve().parent
COOKIE = "appliance_session"
TICKET_TTL_S = 120.0
MAX_SESSIONS = 16
MAX_TICKETS = 16
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
SAMPLE_EVERY_S = 5.0
HISTORY_S = 15 * 60
SERIES = ("viewers", "fps", "speed", "bitrate_kbps", "dropped_frames")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def host_allowed(host: str | None) -> bool:
    """True for a Host header naming a loopback host (any port): the DNS-rebinding check."""
    if not host:
        return False
    host = host.strip().lower()
    if host.startswith("["):
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in LOOPBACK_HOSTS


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """A cross-site request names another origin; a same-origin one (or one without Origin:
    not a browser's cross-site POST) passes."""
    if not origin:
        return True
    return origin.lower() in (f"http://{(host or '').lower()}", f"https://{(host or '').lower()}")


def cookie_value(header: str | None, name: str = COOKIE) -> str | None:
    """The value of cookie ``name`` in a Cookie header."""
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


@dataclass
class Session:
    id: str
    csrf: str
    expires: float


def cookie_name(port: int) -> str:
    """The session cookie of the appliance whose control API listens on ``port``."""
    return f"{COOKIE}_{port}"


class Sessions:
    """One-time login tickets and the sessions they become (in memory: a restart logs out)."""

    def __init__(self, *, lifetime_s: float, clock: Callable[[], float] = time.monotonic,
                 name: str = COOKIE) -> None:
        self.lifetime_s, self.clock, self.name = lifetime_s, clock, name
        self._tickets: dict[str, float] = {}
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        self._tickets = {t: e for t, e in self._tickets.items() if e > now}
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}

    def ticket(self) -> str:
        """A new one-time login ticket (the oldest is dropped past ``MAX_TICKETS``)."""
        now = self.clock()
        with self._lock:
            self._prune(now)
            while len(self._tickets) >= MAX_TICKETS:
                self._tickets.pop(min(self._tickets, key=self._tickets.__getitem__))
            ticket = secrets.token_urlsafe(32)
            self._tickets[ticket] = now + TICKET_TTL_S
            return ticket

    def redeem(self, ticket: str | None) -> Session | None:
        """The new session for a valid, unused ticket (which is spent); None otherwise."""
        now = self.clock()
        with self._lock:
            self._prune(now)
            match = next((t for t in self._tickets if ticket and hmac.compare_digest(t, ticket)), None)
            if match is None:
                return None
            del self._tickets[match]
            while len(self._sessions) >= MAX_SESSIONS:  # the oldest session goes
                self._sessions.pop(min(self._sessions, key=lambda k: self._sessions[k].expires))
            session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24), now + self.lifetime_s)
            self._sessions[session.id] = session
            return session

    def get(self, cookie_header: str | None) -> Session | None:
        value = cookie_value(cookie_header, self.name)
        if not value:
            return None
        now = self.clock()
        with self._lock:
            self._prune(now)
            return next((s for k, s in self._sessions.items() if hmac.compare_digest(k, value)), None)

    def alive(self, session: Session) -> bool:
        """True while ``session`` is neither expired nor revoked (open streams ask this)."""
        now = self.clock()
        with self._lock:
            return self._sessions.get(session.id) is session and session.expires > now

    def revoke(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def cookie(self, session: Session) -> str:
        return (f"{self.name}={session.id}; HttpOnly; SameSite=Strict; Path=/; "
                f"Max-Age={int(self.lifetime_s)}")

    def expired_cookie(self) -> str:
        return f"{self.name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf, given or "")


class History:
    """The last 15 minutes of a few figures (one sample every 5 s) and the last errors."""

    def __init__(self, read: Callable[[], Mapping[str, Any]], *, every_s: float = SAMPLE_EVERY_S,
                 keep_s: float = HISTORY_S, clock: Callable[[], float] = time.time) -> None:
        self.read, self.every_s, self.clock = read, every_s, clock
        self.samples: deque[dict[str, Any]] = deque(maxlen=max(2, int(keep_s / every_s)))
        self.errors: deque[dict[str, Any]] = deque(maxlen=10)
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def sample(self) -> None:
        try:
            status = dict(self.read())
        except Exception:
            log.debug("status not sampled", exc_info=True)
            return
        point = {"t": round(self.clock(), 1), **{k: status.get(k) for k in SERIES}}
        with self._lock:
            self.samples.append(point)
            error = status.get("last_error")
            if error and error != "-" and (not self.errors or self.errors[-1]["error"] != error):
                self.errors.append({"t": point["t"], "error": str(error)[:300]})

    def start(self) -> History:
        def run() -> None:
            while not self._stop.is_set():
                self.sample()
                self._stop.wait(self.every_s)
        threading.Thread(target=run, name="console-history", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"every_s": self.every_s, "samples": list(self.samples), "errors": list(self.errors)}


def notifications_tail(path: Path, limit: int = 20, max_bytes: int = 64_000) -> list[dict[str, Any]]:
    """The last ``limit`` operator notifications (one JSON object a line), newest last."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines[-limit:]:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def login_instructions(url: str, path: str) -> str:
    """What ``appliance console`` prints: the one-time URL and how to reach it from a laptop."""
    port = url.rsplit(":", 1)[-1].rstrip("/")
    return "\n".join([
        f"Open within {TICKET_TTL_S / 60:.0f} minutes (it works once): {url.rstrip('/')}{path}",
        "From another machine, forward the port first and open the same URL there:",
        f"  ssh -N -L {port}:127.0.0.1:{port} <this host>",
        f"  kubectl -n <namespace> port-forward pod/<pod> {port}:{port}",
        "(the console listens on 127.0.0.1 only; README: The console)",
    ])


def static_file(name: str) -> tuple[bytes, str] | None:
    """A file of the console's folder by its plain name (nothing else is reachable)."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        return None
    return path.read_bytes(), STATIC_TYPES[path.suffix]


def page(csrf: str) -> bytes:
    """The console's HTML with the session's CSRF token in a meta tag."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return html.replace("{{CSRF}}", csrf).encode("utf-8")
