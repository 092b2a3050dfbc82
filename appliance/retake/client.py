"""Typed client for every endpoint of the retake.tv skill document (sections 1-3 and 5).

Security boundary (see :mod:`.origin`): every URL is parsed with the transport's own parser,
checked and rebuilt from a validated scheme/host/port before it is sent, and the bearer token is
attached only when that rebuilt origin is the configured API origin (``https://retake.tv``, or a
loopback sandbox the config names explicitly). Redirects are followed by hand, one hop at a time,
each ``Location`` checked and rebuilt the same way, so the header is decided again for every hop:
a redirect to any other host, port or scheme arrives without ``Authorization``, a request carrying
a body is never re-sent off the origin, and a ``Location`` with user info, backslashes, control
characters or whitespace is refused. Authentication goes through an explicit ``auth`` object, so
requests never derives Basic auth from a URL or ``~/.netrc``. The token never appears in a log
line, an exception or a repr.

Transport failures of any kind — refused or reset connections, a read timing out mid-body, a body
cut short, a body trickling in past the deadline, a 2xx answer that is not complete JSON — are
:class:`~appliance.core.errors.RetakeUnavailable` (temporary). Calls that are safe to repeat are
retried on those, 429 (honouring ``Retry-After``) and 5xx with capped exponential backoff and
jitter, at most ``retake.retries`` times.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests
import urllib3
from pydantic import BaseModel, ValidationError

from ..core.errors import (
    RetakeConflict,
    RetakeError,
    RetakeProtocolError,
    RetakeUnavailable,
    SecurityError,
    error_for_status,
)
from ..core.sanitize import clean_text
from . import models as m
from . import normalize
from .credentials import Secret
from .origin import Origin, Target, UnsafeUrl, api_origin_problem, parse_target, resolve
from .settings import RetakeConfig

log = logging.getLogger("appliance.retake")

M = TypeVar("M", bound=BaseModel)
MAX_REDIRECTS = 5
MAX_BODY = 4_000_000  # bytes read from any answer
READ_CHUNK = 65536
# Everything the HTTP stack can raise for a broken exchange (socket errors are OSError).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


class _NotJson(Exception):
    """A 2xx answer whose body is not complete JSON (cut short, or not JSON at all)."""


class _BearerAuth(requests.auth.AuthBase):
    """Sets (or withholds) Authorization; passing any auth object stops requests from taking
    credentials out of the URL or ``~/.netrc``."""

    def __init__(self, token: Secret | None) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        if self._token:
            request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)" if self._token else "_BearerAuth(none)"


@dataclass
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class CallStats:
    """Counts for metrics: requests sent, retries, errors by status, comments skipped by reason."""

    requests: int = 0
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    comments_skipped: dict[str, int] = field(default_factory=dict)

    def skipped(self, reason: str) -> None:
        self.comments_skipped[reason] = self.comments_skipped.get(reason, 0) + 1


class RetakeClient:
    """One agent's view of the retake.tv API."""

    def __init__(self, cfg: RetakeConfig, token: Secret | None = None, *,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        try:  # RetakeConfig validated this already; a config built around validation still cannot leak
            self._base = parse_target(cfg.base_url.rstrip("/") + "/", "base_url")
            problem = api_origin_problem(self._base.origin, sandbox=cfg.sandbox)
        except UnsafeUrl as exc:
            problem = str(exc)
        if problem:
            raise SecurityError(f"retake.base_url refused: {problem}", fix="use https://retake.tv/api/v1")
        self.base_url = self._base.url
        self._origin: Origin = self._base.origin
        self._token = token
        self._session = session or requests.Session()
        if self._origin.is_loopback():
            self._session.trust_env = False  # no proxy between us and a local sandbox
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.stats = CallStats()

    def __repr__(self) -> str:
        return f"RetakeClient(base_url={self.base_url!r}, token={'set' if self._token else 'none'})"

    def with_token(self, token: Secret) -> RetakeClient:
        return RetakeClient(self.cfg, token, session=self._session, sleep=self._sleep, rng=self._rng,
                            clock=self._clock)

    @property
    def origin(self) -> Origin:
        """The one origin the token may go to."""
        return self._origin

    def with_limits(self, *, timeout_s: float, retries: int) -> RetakeClient:
        """This client (token, session, counters) with a tighter deadline per call: each attempt
        bounded by ``timeout_s``, at most ``retries`` retries (the LIVE loop, shutdown)."""
        cfg = self.cfg.model_copy(update={"timeout_s": min(timeout_s, self.cfg.timeout_s),
                                          "retries": min(retries, self.cfg.retries),
                                          "backoff_max_s": min(timeout_s, self.cfg.backoff_max_s)})
        clone = RetakeClient(cfg, self._token, session=self._session, sleep=self._sleep, rng=self._rng,
                             clock=self._clock)
        clone.stats = self.stats
        return clone

    # --- transport ---------------------------------------------------------------------

    def _target(self, path: str) -> Target:
        """An absolute URL (checked) or a path under base_url, rebuilt; never the raw text."""
        try:
            if "://" in path:
                return parse_target(path)
            return resolve(self._base, path.lstrip("/"), "request path")
        except UnsafeUrl as exc:
            raise SecurityError(f"refused to send a request: {exc}",
                                fix="only plain https://retake.tv URLs (or the configured sandbox) are sent") from None

    def _may_carry_token(self, target: Target) -> bool:
        return target.origin == self._origin

    def _exchange(self, method: str, target: Target, *, auth: bool, json_body: Any = None,
                  files: Any = None, params: Mapping[str, Any] | None = None) -> _Answer:
        """One logical request, redirects followed by hand with the header decided per hop, the
        whole body read within the deadline. Raises TRANSPORT_ERRORS for a broken exchange."""
        body_sent = json_body is not None or files is not None
        for _hop in range(MAX_REDIRECTS + 1):
            token = self._token if auth and self._may_carry_token(target) else None
            self.stats.requests += 1
            try:
                response = self._session.request(
                    method, target.url, headers={"Accept": "application/json", "User-Agent": "retake-appliance/0.1"},
                    auth=_BearerAuth(token), json=json_body, files=files, params=params,
                    timeout=(min(5.0, self.cfg.timeout_s), self.cfg.timeout_s), allow_redirects=False, stream=True)
            except ValueError as exc:  # requests pre-parses a Location even without redirects ("Invalid IPv6 URL")
                raise requests.RequestException(f"unreadable answer ({type(exc).__name__})") from exc
            with response:
                location = self._session.get_redirect_target(response)
                if location is None:
                    return _Answer(response.status_code, response.headers, self._read_body(response))
            try:
                nxt = resolve(target, location)
            except UnsafeUrl as exc:
                raise RetakeProtocolError(f"{method} {target.path}: refused a redirect ({exc})") from None
            if nxt.origin != self._origin and body_sent:
                raise SecurityError(f"{method} {target.path}: refused a redirect off {self._origin.host} "
                                    f"to {nxt.origin.host} for a request with a body")
            if response.status_code in (301, 302, 303) and method != "HEAD":
                method, json_body, files, body_sent = "GET", None, None, False
            target, params = nxt, None
        raise RetakeProtocolError(f"{method} {target.path}: more than {MAX_REDIRECTS} redirects")

    def _read_body(self, response: requests.Response) -> bytes:
        """At most MAX_BODY + 1 bytes, all of it within ``timeout_s`` (a trickle cannot hold us)."""
        if response.raw is None:
            return b""
        deadline = self._clock() + self.cfg.timeout_s
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BODY:
            chunk = response.raw.read1(READ_CHUNK, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if self._clock() > deadline:
                raise TimeoutError(f"the answer took longer than {self.cfg.timeout_s:g} s to arrive")
        return b"".join(chunks)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        asked = _retry_after_seconds(retry_after)
        if asked is not None:
            return min(asked, self.cfg.backoff_max_s)
        cap = min(self.cfg.backoff_max_s, self.cfg.backoff_s * (2 ** attempt))
        return self._rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    def request(self, method: str, path: str, *, auth: bool = True, idempotent: bool = True,
                json_body: Any = None, files: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """Send, retry where safe, map errors, and return the parsed JSON answer."""
        target = self._target(path)
        shown = target.path
        attempts = (self.cfg.retries if idempotent else 0) + 1
        for attempt in range(attempts):
            started = self._clock()
            retry_after = None
            try:
                answer = self._exchange(method, target, auth=auth, json_body=json_body, files=files,
                                        params=params)
            except TRANSPORT_ERRORS as exc:
                error: RetakeError = RetakeUnavailable(
                    f"{method} {shown}: no complete answer from {self._origin.host} ({_describe(exc)})",
                    method=method, path=shown)
            else:
                log.debug("%s %s -> %s in %.0f ms", method, shown, answer.status, (self._clock() - started) * 1000)
                if answer.status < 400:
                    try:
                        return self._json(answer.body, method, shown)
                    except _NotJson as exc:
                        error = RetakeUnavailable(f"{method} {shown}: {exc}", method=method, path=shown)
                else:
                    error = self._error(answer.status, answer.body, method, shown)
                    retry_after = answer.headers.get("Retry-After")
            key = str(error.status or "network")
            self.stats.errors[key] = self.stats.errors.get(key, 0) + 1
            # 409 is temporary for the lifecycle (call stream/start), not something to repeat here
            if not error.temporary or isinstance(error, RetakeConflict) or attempt + 1 >= attempts:
                raise error
            delay = self._backoff(attempt, retry_after)
            self.stats.retries += 1
            log.warning("%s; retry %d/%d in %.1f s", error.message, attempt + 1, attempts - 1, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")

    @staticmethod
    def _json(raw: bytes, method: str, path: str) -> Any:
        if len(raw) > MAX_BODY:
            raise RetakeProtocolError(f"{method} {path}: answer larger than {MAX_BODY} bytes")
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            shown = clean_text(raw[:80].decode("utf-8", "replace"), 80)
            raise _NotJson(f"answer cut short or not JSON ({len(raw)} bytes: {shown!r})") from None

    @staticmethod
    def _error(status: int, raw: bytes, method: str, path: str) -> RetakeError:
        detail = ""
        try:
            data = json.loads(raw[:20000] or b"{}")
            if isinstance(data, dict):
                detail = str(data.get("error") or data.get("message") or data.get("detail") or "")
        except ValueError:
            detail = raw[:200].decode("utf-8", "replace")
        detail = clean_text(detail, 200)
        cls = error_for_status(status)
        text = f"{method} {path}: HTTP {status}" + (f" ({detail})" if detail else "")
        return cls(text, status=status, method=method, path=path)

    def _get(self, model: type[M], path: str, **kw: Any) -> M:
        return self._parse(model, self.request("GET", path, **kw), path)

    def _post(self, model: type[M], path: str, **kw: Any) -> M:
        return self._parse(model, self.request("POST", path, **kw), path)

    @staticmethod
    def _parse(model: type[M], data: Any, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "answer"
            raise RetakeProtocolError(f"{path}: unexpected answer ({where}: {first['msg']})") from None

    def _list(self, model: type[M], path: str, key: str | None = None, **kw: Any) -> list[M]:
        data = self.request("GET", path, auth=False, **kw)
        if isinstance(data, dict):
            candidates = [key] if key else []
            candidates += [k for k, v in data.items() if isinstance(v, list)]
            data = next((data[k] for k in candidates if k in data and isinstance(data[k], list)), None)
        if not isinstance(data, list):
            raise RetakeProtocolError(f"{path}: expected a list")
        return [self._parse(model, item, path) for item in data]

    # --- section 1: registration and verification --------------------------------------

    def register(self, *, agent_name: str, agent_description: str, image_url: str,
                 wallet_address: str, ticker: str) -> m.RegisterResult:
        body = {"agent_name": agent_name, "agent_description": agent_description,
                "image_url": image_url, "wallet_address": wallet_address, "ticker": ticker}
        data = self.request("POST", "agent/register", auth=False, idempotent=False, json_body=body)
        token = normalize.access_token(data)  # first: the platform never shows it again
        try:
            return m.RegisterResult.model_validate(data)
        except ValidationError:  # every other field is lenient; this is belt and braces
            log.warning("agent/register: answer partly unreadable; keeping the access token")
            return m.RegisterResult(access_token=token)

    def prepare_verify(self) -> m.VerificationMessage:
        return self._post(m.VerificationMessage, "agent/prepare-verify", idempotent=False)

    def verify(self, tweet_url: str) -> m.Verified:
        return self._post(m.Verified, "agent/verify", json_body={"tweet_url": tweet_url})

    def verification_status(self) -> m.Verified:
        return self._get(m.Verified, "agent/verification-status")

    # --- section 2: stream lifecycle ---------------------------------------------------

    def rtmp(self) -> m.RtmpCredentials:
        return self._post(m.RtmpCredentials, "agent/rtmp")

    def stream_start(self) -> m.StreamStartResult:
        return self._post(m.StreamStartResult, "agent/stream/start")

    def stream_status(self) -> m.StreamStatus:
        return self._get(m.StreamStatus, "agent/stream/status")

    def update_thumbnail(self, image: bytes, *, filename: str = "thumbnail.png",
                         content_type: str = "image/png") -> m.ThumbnailResult:
        return self._post(m.ThumbnailResult, "agent/update-thumbnail",
                          files={"image": (filename, image, content_type)})

    def stream_stop(self) -> m.StreamStopResult:
        return self._post(m.StreamStopResult, "agent/stream/stop")

    # --- section 3: chat -----------------------------------------------------------------

    def chat_send(self, message: str, destination_user_id: str) -> m.ChatSendResult:
        body = {"message": message, "destination_user_id": destination_user_id}
        if self._token and self._may_carry_token(self._target("agent/stream/chat/send")):
            body["access_token"] = self._token.reveal()  # the reference's payload carries it too
        return self._post(m.ChatSendResult, "agent/stream/chat/send", idempotent=False, json_body=body)

    def comments(self, user_db_id: str, *, limit: int = 50, before_id: str | None = None) -> list[m.Comment]:
        params: dict[str, Any] = {"userDbId": user_db_id, "limit": max(1, min(int(limit), 100))}
        if before_id:
            params["beforeId"] = before_id
        return m.parse_comments(self.request("GET", "agent/stream/comments", params=params),
                                on_skip=self.stats.skipped)

    # --- section 5: public API -----------------------------------------------------------

    def search_users(self, query: str) -> list[m.UserSummary]:
        return self._list(m.UserSummary, f"users/search/{quote(query, safe='')}")

    def live_users(self) -> list[m.UserSummary]:
        return self._list(m.UserSummary, "users/live/")

    def newest_users(self) -> list[m.UserSummary]:
        return self._list(m.UserSummary, "users/newest/")

    def user_metadata(self, user_id: str) -> m.UserMetadata:
        return self._get(m.UserMetadata, f"users/metadata/{quote(user_id, safe='')}", auth=False)

    def streamer(self, identifier: str) -> m.Streamer:
        return self._get(m.Streamer, f"users/streamer/{quote(identifier, safe='')}", auth=False)

    def active_sessions(self, streamer_id: str | None = None) -> list[m.Session]:
        path = f"sessions/active/{quote(streamer_id, safe='')}/" if streamer_id else "sessions/active/"
        return self._list(m.Session, path)

    def recorded_sessions(self, streamer_id: str | None = None) -> list[m.Session]:
        path = f"sessions/recorded/{quote(streamer_id, safe='')}/" if streamer_id else "sessions/recorded/"
        return self._list(m.Session, path)

    def scheduled_sessions(self, streamer_id: str | None = None) -> list[m.Session]:
        path = f"sessions/scheduled/{quote(streamer_id, safe='')}/" if streamer_id else "sessions/scheduled/"
        return self._list(m.Session, path)

    def join_session(self, session_id: str) -> m.JoinToken:
        return self._get(m.JoinToken, f"sessions/{quote(session_id, safe='')}/join/", auth=False)

    def top_tokens(self) -> list[m.TokenSummary]:
        return self._list(m.TokenSummary, "tokens/top/")

    def trending_tokens(self) -> list[m.TokenSummary]:
        return self._list(m.TokenSummary, "tokens/trending/")

    def token_stats(self, address: str) -> m.TokenStats:
        return self._get(m.TokenStats, f"tokens/{quote(address, safe='')}/stats", auth=False)

    def recent_trades(self, token_address: str | None = None, *, limit: int = 50,
                      cursor: str | None = None) -> list[m.Trade]:
        path = f"trades/recent/{quote(token_address, safe='')}/" if token_address else "trades/recent/"
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if cursor:
            params["cursor"] = cursor
        return self._list(m.Trade, path, params=params)

    def top_volume(self, *, limit: int = 50, window: str = "24h") -> list[m.Trade]:
        return self._list(m.Trade, "trades/top-volume/", params={"limit": limit, "window": window})

    def top_count(self, *, limit: int = 50) -> list[m.Trade]:
        return self._list(m.Trade, "trades/top-count/", params={"limit": limit})

    def public_chat(self, streamer_id: str, *, limit: int = 50,
                    before_chat_event_id: str | None = None) -> list[m.PublicChat]:
        params: dict[str, Any] = {"streamer_id": streamer_id, "limit": max(1, min(limit, 100))}
        if before_chat_event_id:
            params["before_chat_event_id"] = before_chat_event_id
        return self._list(m.PublicChat, "chat/", key="chats", params=params)

    def top_tippers(self, streamer_id: str) -> list[m.Trade]:
        return self._list(m.Trade, "chat/top-tippers", params={"streamer_id": streamer_id})


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value)) if value.replace(".", "", 1).isdigit() else \
            max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _describe(exc: BaseException) -> str:
    """The exception's class and the innermost cause's class (never a URL: it could hold anything)."""
    names = [type(exc).__name__]
    inner = exc.__cause__ or exc.__context__ or (
        exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
    if isinstance(inner, BaseException) and type(inner).__name__ not in names:
        names.append(type(inner).__name__)
    return " / ".join(names)
