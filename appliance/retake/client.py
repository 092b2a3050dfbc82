"""Typed client for every endpoint of the retake.tv skill document (sections 1-3 and 5).

Security boundary: the bearer token is attached only to requests whose origin is the
configured API origin, and that origin is ``https://retake.tv`` or a loopback sandbox the
config names explicitly (validated in :class:`appliance.config.RetakeConfig`). Redirects
are followed by hand, one hop at a time, so the header is decided again for every hop:
a redirect to any other host or port arrives without ``Authorization``, and a request
carrying a body is never re-sent off the origin. The token never appears in a log line,
an exception or a repr.

Every call has a timeout. Calls that are safe to repeat are retried on connection errors,
timeouts, 429 and 5xx with capped exponential backoff and full jitter, at most
``retake.retries`` times.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests
from pydantic import BaseModel, ValidationError

from ..config import RetakeConfig, is_loopback_host
from ..credentials import Secret
from ..errors import (RetakeConflict, RetakeError, RetakeProtocolError, RetakeUnavailable, SecurityError,
                      error_for_status)
from ..sanitize import clean_text
from . import models as m

log = logging.getLogger("appliance.retake")

M = TypeVar("M", bound=BaseModel)
MAX_REDIRECTS = 5
MAX_BODY = 4_000_000  # bytes read from any answer


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


@dataclass
class CallStats:
    """Counts for metrics: requests sent, retries, errors by status."""

    requests: int = 0
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class RetakeClient:
    """One agent's view of the retake.tv API."""

    def __init__(self, cfg: RetakeConfig, token: Secret | None = None, *,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.base_url = cfg.base_url.rstrip("/") + "/"
        self._origin = origin_of(self.base_url)
        self._token = token
        self._session = session or requests.Session()
        if is_loopback_host(self._origin[1]):
            self._session.trust_env = False  # no proxy or netrc between us and a local sandbox
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = CallStats()

    def __repr__(self) -> str:
        return f"RetakeClient(base_url={self.base_url!r}, token={'set' if self._token else 'none'})"

    def with_token(self, token: Secret) -> "RetakeClient":
        return RetakeClient(self.cfg, token, session=self._session, sleep=self._sleep, rng=self._rng)

    def with_limits(self, *, timeout_s: float, retries: int) -> "RetakeClient":
        """This client (token, session, counters) with a tighter deadline per call: each attempt
        bounded by ``timeout_s``, at most ``retries`` retries (the LIVE loop, shutdown)."""
        cfg = self.cfg.model_copy(update={"timeout_s": min(timeout_s, self.cfg.timeout_s),
                                          "retries": min(retries, self.cfg.retries),
                                          "backoff_max_s": min(timeout_s, self.cfg.backoff_max_s)})
        clone = RetakeClient(cfg, self._token, session=self._session, sleep=self._sleep, rng=self._rng)
        clone.stats = self.stats
        return clone

    # --- transport ---------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path

    def _may_carry_token(self, url: str) -> bool:
        return origin_of(url) == self._origin

    def _send_once(self, method: str, url: str, *, auth: bool, json_body: Any = None,
                   files: Any = None, params: Mapping[str, Any] | None = None) -> requests.Response:
        """One logical request; redirects followed by hand with the header decided per hop."""
        body_sent = json_body is not None or files is not None
        for _hop in range(MAX_REDIRECTS + 1):
            headers = {"Accept": "application/json", "User-Agent": "retake-appliance/0.1"}
            if auth and self._token and self._may_carry_token(url):
                headers["Authorization"] = f"Bearer {self._token.reveal()}"
            self.stats.requests += 1
            response = self._session.request(
                method, url, headers=headers, json=json_body, files=files, params=params,
                timeout=(min(5.0, self.cfg.timeout_s), self.cfg.timeout_s), allow_redirects=False,
                stream=True)
            if not response.is_redirect:
                return response
            target = urljoin(url, response.headers.get("Location", ""))
            response.close()
            if origin_of(target) != self._origin and body_sent:
                raise SecurityError(f"{method} {urlsplit(url).path}: refused a redirect off "
                                    f"{self._origin[1]} to {urlsplit(target).hostname} for a request with a body")
            if response.status_code in (301, 302, 303) and method != "HEAD":
                method, json_body, files, body_sent = "GET", None, None, False
            url, params = target, None
        raise RetakeProtocolError(f"{method} {urlsplit(url).path}: more than {MAX_REDIRECTS} redirects")

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.cfg.backoff_max_s)
        cap = min(self.cfg.backoff_max_s, self.cfg.backoff_s * (2 ** attempt))
        return self._rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    def request(self, method: str, path: str, *, auth: bool = True, idempotent: bool = True,
                json_body: Any = None, files: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """Send, retry where safe, map errors, and return the parsed JSON answer."""
        url = self._url(path)
        shown = urlsplit(url).path
        attempts = (self.cfg.retries if idempotent else 0) + 1
        for attempt in range(attempts):
            started = time.monotonic()
            retry_after = None
            try:
                response = self._send_once(method, url, auth=auth, json_body=json_body, files=files,
                                           params=params)
            except requests.RequestException as exc:
                error: RetakeError = RetakeUnavailable(
                    f"{method} {shown}: no answer from {self._origin[1]} ({type(exc).__name__})",
                    method=method, path=shown)
            else:
                with response:
                    raw = response.raw.read(MAX_BODY + 1, decode_content=True) if response.raw else b""
                elapsed = time.monotonic() - started
                log.debug("%s %s -> %s in %.0f ms", method, shown, response.status_code, elapsed * 1000)
                if response.status_code < 400:
                    return self._json(raw, method, shown)
                error = self._error(response.status_code, raw, method, shown)
                retry_after = response.headers.get("Retry-After")
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
            raise RetakeProtocolError(f"{method} {path}: answer is not JSON "
                                      f"({clean_text(raw[:80].decode('utf-8', 'replace'), 80)!r})") from None

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
        return self._post(m.RegisterResult, "agent/register", auth=False, idempotent=False, json_body=body)

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
        if self._token and self._may_carry_token(self._url("agent/stream/chat/send")):
            body["access_token"] = self._token.reveal()  # the reference's payload carries it too
        return self._post(m.ChatSendResult, "agent/stream/chat/send", idempotent=False, json_body=body)

    def comments(self, user_db_id: str, *, limit: int = 50, before_id: str | None = None) -> list[m.Comment]:
        params: dict[str, Any] = {"userDbId": user_db_id, "limit": max(1, min(int(limit), 100))}
        if before_id:
            params["beforeId"] = before_id
        return m.parse_comments(self.request("GET", "agent/stream/comments", params=params))

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
