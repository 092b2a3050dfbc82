"""The sandbox platform's state and rules, independent of HTTP.

Everything here runs on the sandbox's event-loop thread only (the HTTP handlers, the nginx
callbacks, the viewer simulator and the runner's helpers all go through that loop), so no locks.
Methods raise :class:`ApiError` (status + message) for anything the platform refuses; the HTTP
layer turns that into ``{"error": message}`` with the status.

Decisions where the reference (retake-skill.md 2.1.2) is silent or ambiguous:

* ``userDbId`` / ``streamer_id`` are UUIDs (the public API says ``streamer_id=<uuid>`` and
  ``/users/streamer/:identifier`` takes "username OR UUID"); ``agent_id`` is ``agent_<hex>``.
* Register requires all five documented fields as non-empty strings; names are unique
  case-insensitively (max 50 chars); ticker 1-10 chars; the wallet must base58-decode to 32 bytes.
* ``verification_message`` is ``Claiming my Livestreaming Agent on @retakedottv. Code: <CODE>``.
* Unverified agents may stream: the reference only says the token is not deployed until the
  agent is verified. So ``stream/start`` succeeds with ``tokenAddress: ""``; the first start after
  verification assigns the address, which then persists.
* ``stream/start`` with a session already active keeps that session (idempotent), so the
  documented crash recovery (rtmp -> stream/start -> restart FFmpeg) works.
* ``update-thumbnail`` and ``stream/stop`` answer 409 "No active session" without a session.
* ``is_live`` is true only while nginx has an accepted publish with the agent's *current* key and
  a session is active; ``uptime_seconds`` counts from the moment both became true.
* A valid current key may publish before ``stream/start`` (the ingest accepts it); the stream
  becomes live when the session starts. Rotating the key does not kick a running publisher,
  but that publisher no longer counts as live.
* Chat ids are ObjectId-like 24-hex strings that sort (as strings) in creation order.
* ``stream/comments`` documented shape: ``{"comments": [...]}`` holding the ``limit`` newest
  messages older than ``beforeId`` (all if absent). The reference says nothing of the page's
  order nor of the timestamp's precision, so the sandbox assumes the least a client may rely on:
  **newest first** (the order the observed shape shows; setting ``comments_order:
  oldest_first`` serves the other one) and timestamps to the **second**, as the reference's
  example (``2025-02-01T14:20:00Z``): a burst within one second has no order a client can read
  from its times. The streamer's own messages (``chat/send``) are part of the history. ``limit``
  above 100 is capped to 100. ``beforeId`` takes either id a shape shows (the 24-hex ``_id`` or
  the numeric ``chat_event_id``).
* Every chat event has two ids: the ObjectId-like ``_id`` and a numeric, increasing
  ``chat_event_id`` (as other clients observed). ``chat/send`` answers both (``message_id`` is the
  ``_id``); the reference does not document that answer.
* The shape switch (settings ``comments_shape``, ``register_shape``, ``rtmp_shape``,
  ``field_drift``; ``appliance sandbox --comments-shape``) serves every variant other clients,
  tests and older skill copies show (samples written from their field lists; see
  :data:`COMMENT_SHAPES` and the constants below). A viewer without a name (an anonymous
  wallet) has its name left out or ``null``, as each shape allows.
* Socket.IO, as strict as the reference (section 7): ``joinRoom``/``leaveRoom {roomId}`` get no
  acknowledgement and no answer at all (setting ``socket_ack`` acknowledges them with
  ``{ok, roomId}``; ``joined_room_event`` emits ``joinedRoom {roomId}`` as an older platform
  version did). Payloads carry the documented fields only: ``message`` the message payload of
  the reference (``type``, ``session_id``, ``streamer_id``, ``sender_user_id``,
  ``sender_username``, ``text``, ``timestamp`` in ms, ``tip_data``/``trade_data``), ``newtrade``
  ``address``, ``action``, ``usdAmount``, ``tokenTicker``. Setting ``socket_extras`` adds what other
  clients observed (``chat_event_id``, the sender's wallet, display name and picture; the trade's
  trader and transaction). Rooms and events: ``{streamer_id}`` ``message``; ``live_{streamer_id}``
  ``tip_received``, ``session_started``, ``user_followed``; ``{streamer_id}/{session_id}``
  ``pinned``; ``trades`` ``newtrade`` and ``rawtrade``; ``trades_{tokenAddress}`` ``newtrade``.
* A platform notice (the "shutdown warning" the reference mentions without its channel) is a
  chat event of type ``warning`` from the platform itself (no sender id, wallet or fid; sender
  name ``retake.tv``): emitted as ``message`` in ``{streamer_id}`` and kept in the chat history,
  where every comments shape shows its ``type`` (the documented one too: the reference shows
  only a viewer's comment).
* Public-endpoint wrappers not given by the reference: lists are bare arrays except
  ``/chat/`` (``{"chats": [...]}``, documented) and ``/trades/recent/`` (``{"trades": [...],
  "next_cursor": ...}``, since it takes a cursor).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core import base58
from ..core.base58 import solana_key_problem
from ..core.files import write_json

SKILL_VERSION = "2.1.2"
MAX_NAME = 50
MAX_TICKER = 10
MAX_TEXT = 2000  # chat message / comment length bound (characters)
MAX_CHAT_PER_STREAMER = 500
MAX_RECORDED_SESSIONS = 200
MAX_TRADES = 500
MAX_OLD_KEYS = 50
MAX_THUMBNAIL_BYTES = 5 * 1024 * 1024
TWEET_URL = re.compile(r"^https?://(www\.|mobile\.)?(twitter\.com|x\.com)/[A-Za-z0-9_]{1,15}/status/\d{1,25}/?(\?[^\s#]*)?$")
VERIFY_TEXT = "Claiming my Livestreaming Agent on @retakedottv. Code: "
# stream/comments answers (page order in brackets; docs/payloads.md lists them all):
#   documented          (oldest first)
#                       {"comments": [{_id, streamId, text, timestamp,
#                                      author{walletAddress, fusername?, fid, favatar}}]}
#   observed            (bare array, newest first)
#                       [{chat_event_id, sender_user_id, sender_username, sender_display_name, sender_pfp,
#                         sender_wallet_address, session_id, text, type, timestamp(ms)}]
#   observed_wrapped    (newest first) {"comments": [the observed items without timestamp]}
#   comment_created_at  (oldest first)
#                       {"comments": [{_id, streamId, comment, createdAt, author{_id, walletAddress, fusername?, fid}}]}
#   flat_v1             (oldest first) {"comments": [{id, username, message, timestamp}]}  (skill 1.x copies)
#   author_wallet       (bare array, newest first) [{id (a number), author_wallet, username, message, created_at}]
COMMENT_SHAPES = ("documented", "observed", "observed_wrapped", "comment_created_at", "flat_v1", "author_wallet")
# agent/register: documented; nulls (wallet_address, token_address, token_ticker null); wrapped ({"data": ...});
# minimal (access_token and userDbId only); token_only (the worst case: the access token alone)
REGISTER_SHAPES = ("documented", "nulls", "wrapped", "minimal", "token_only")
# agent/rtmp: {url, key}; {rtmp_url, stream_key}; {rtmpUrl, streamKey}; each also under {"data": ...}
COMMENTS_ORDERS = ("newest_first", "oldest_first")  # the documented shape's page order (setting comments_order)
PLATFORM_NAME = "retake.tv"  # the sender name of the platform's own notices (type warning)
RTMP_SHAPES = ("documented", "snake", "camel", "documented_data", "snake_data", "camel_data")
RTMP_FIELDS = {"documented": ("url", "key"), "snake": ("rtmp_url", "stream_key"), "camel": ("rtmpUrl", "streamKey")}
# field names elsewhere: stream/status viewers, tokens/:address/stats market_cap, users/live user_id + market_cap
FIELD_DRIFT = {"none": {},
               "snake": {"viewers": "viewer_count", "market_cap": "current_market_cap", "user_id": "userDbId"},
               "camel": {"viewers": "viewer_count", "market_cap": "marketCap", "user_id": "userDbId"}}

Emitter = Callable[[str, dict[str, Any], str], Awaitable[None]]


class ApiError(Exception):
    """A refusal with an HTTP status and the message for ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_seconds(ts: float) -> str:
    """The reference example's precision: ``2025-02-01T14:20:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class IdGen:
    """ObjectId-like ids: 4-byte time, 5 random bytes, 3-byte counter (hex) — sortable."""

    def __init__(self) -> None:
        self._machine = secrets.token_hex(5)
        self._counter = secrets.randbelow(1 << 16)

    def next(self) -> str:
        self._counter = (self._counter + 1) & 0xFFFFFF
        return f"{int(time.time()):08x}{self._machine}{self._counter:06x}"


@dataclass
class ChatEvent:
    id: str
    seq: int  # the numeric chat_event_id
    streamer_id: str
    session_id: str
    type: str  # "message" | "tip" | "trade"
    text: str
    ts: float
    sender_user_id: str
    sender_username: str
    sender_display_name: str
    sender_pfp: str
    sender_wallet: str
    fid: int
    tip_data: dict[str, Any] | None = None
    trade_data: dict[str, Any] | None = None

    @property
    def from_platform(self) -> bool:
        return self.type not in ("message", "tip", "trade")

    def documented(self) -> dict[str, Any]:
        data = {"_id": self.id, "streamId": self.streamer_id, "text": self.text, "timestamp": iso_seconds(self.ts),
                "author": self._author(walletAddress=self.sender_wallet, fid=self.fid, favatar=self.sender_pfp)}
        return {**data, "type": self.type} if self.from_platform else data

    def socket(self, extras: bool = False) -> dict[str, Any]:
        """The ``message`` event: the reference's message payload (plus what other clients saw)."""
        data: dict[str, Any] = {"type": self.type, "session_id": self.session_id, "streamer_id": self.streamer_id,
                                "sender_user_id": self.sender_user_id or None,
                                "sender_username": self.sender_username or None, "text": self.text,
                                "timestamp": str(int(self.ts * 1000))}
        if self.tip_data is not None:
            data["tip_data"] = self.tip_data
        if self.trade_data is not None:
            data["trade_data"] = self.trade_data
        if extras:
            data.update(chat_event_id=str(self.seq), sender_display_name=self.sender_display_name or None,
                        sender_pfp=self.sender_pfp, sender_wallet_address=self.sender_wallet)
        return data

    def _author(self, **fields: Any) -> dict[str, Any]:
        return {**fields, **({"fusername": self.sender_username} if self.sender_username else {})}

    def observed(self, timestamp: bool = True) -> dict[str, Any]:
        data = {"chat_event_id": str(self.seq), "sender_user_id": self.sender_user_id,
                "sender_username": self.sender_username or None,
                "sender_display_name": self.sender_display_name or None,
                "sender_pfp": self.sender_pfp, "sender_wallet_address": self.sender_wallet,
                "session_id": self.session_id, "text": self.text, "type": self.type}
        return {**data, "timestamp": str(int(self.ts * 1000))} if timestamp else data

    def comment_created_at(self) -> dict[str, Any]:
        data = {"_id": self.id, "streamId": self.streamer_id, "comment": self.text, "createdAt": iso(self.ts),
                "author": self._author(_id=self.sender_user_id, walletAddress=self.sender_wallet, fid=self.fid)}
        return {**data, "type": self.type} if self.from_platform else data

    def flat_v1(self) -> dict[str, Any]:
        data = {"id": self.id, "username": self.sender_username or None, "message": self.text,
                "timestamp": iso(self.ts)}
        return {**data, "type": self.type} if self.from_platform else data

    def author_wallet(self) -> dict[str, Any]:
        data = {"id": self.seq, "author_wallet": self.sender_wallet, "username": self.sender_username or None,
                "message": self.text, "created_at": iso(self.ts)}
        return {**data, "type": self.type} if self.from_platform else data

    def public(self) -> dict[str, Any]:
        return {**self.observed(), "streamer_id": self.streamer_id,
                "tip_data": self.tip_data, "trade_data": self.trade_data}

    def older_than(self, cursor: str) -> bool:
        return self.seq < int(cursor) if cursor.isdigit() else self.id < cursor


def comments_page(events: list[ChatEvent], shape: str, order: str = "newest_first") -> Any:
    """``events`` (oldest first) as the ``stream/comments`` answer of ``shape`` (see COMMENT_SHAPES);
    ``order`` is the documented shape's (which the reference does not give)."""
    newest_first = list(reversed(events))
    if shape == "observed":
        return [e.observed() for e in newest_first]
    if shape == "observed_wrapped":
        return {"comments": [e.observed(timestamp=False) for e in newest_first]}
    if shape == "comment_created_at":
        return {"comments": [e.comment_created_at() for e in events]}
    if shape == "flat_v1":
        return {"comments": [e.flat_v1() for e in events]}
    if shape == "author_wallet":
        return [e.author_wallet() for e in newest_first]
    return {"comments": [e.documented() for e in (newest_first if order == "newest_first" else events)]}


@dataclass
class Session:
    session_id: str
    streamer_id: str
    title: str
    started_at: float
    live_since: float | None = None
    ended_at: float | None = None
    peak_viewers: int = 0
    final_viewers: int = 0

    def public(self, viewers: int = 0, is_live: bool = False) -> dict[str, Any]:
        data = {"session_id": self.session_id, "streamer_id": self.streamer_id, "title": self.title,
                "started_at": iso(self.started_at), "is_live": is_live, "viewers": viewers}
        if self.ended_at is not None:
            data.update(ended_at=iso(self.ended_at), duration_seconds=int(self.ended_at - self.started_at),
                        peak_viewers=self.peak_viewers)
        return data


@dataclass
class Token:
    address: str
    user_id: str
    name: str
    ticker: str
    image_url: str
    created_at: float
    price: float = 0.000005
    initial_market_cap: float = 5000.0
    market_cap: float = 5000.0
    all_time_high: float = 5000.0
    volume: float = 0.0
    trade_count: int = 0
    earnings: float = 0.0

    def stats(self) -> dict[str, Any]:
        growth = round((self.market_cap / self.initial_market_cap - 1) * 100, 2)
        return {"address": self.address, "ticker": self.ticker, "name": self.name,
                "current_price": self.price, "market_cap": round(self.market_cap, 2),
                "all_time_high": round(self.all_time_high, 2),
                "growth": {"1h": growth, "6h": growth, "24h": growth},
                "volume": round(self.volume, 2), "earnings": round(self.earnings, 4),
                "trade_count": self.trade_count}


@dataclass
class Agent:
    agent_id: str
    user_id: str
    name: str
    description: str
    image_url: str
    wallet: str
    ticker: str
    access_token: str
    created_at: float
    fid: int
    verified: bool = False
    verification_code: str | None = None
    rtmp_key: str | None = None
    old_keys: list[str] = field(default_factory=list)
    token_address: str = ""
    followers: int = 0
    # Runtime only (not persisted):
    publishing_key: str | None = field(default=None, repr=False)
    session: Session | None = field(default=None, repr=False)
    viewers: int = 0
    thumbnail: bytes | None = field(default=None, repr=False)
    thumbnail_info: dict[str, Any] | None = None
    thumbnail_count: int = 0

    PERSISTED = ("agent_id", "user_id", "name", "description", "image_url", "wallet", "ticker",
                 "access_token", "created_at", "fid", "verified", "verification_code", "rtmp_key",
                 "old_keys", "token_address", "followers")

    @property
    def is_live(self) -> bool:
        return (self.session is not None and self.publishing_key is not None
                and self.publishing_key == self.rtmp_key)

    def summary(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "username": self.name, "bio": self.description,
                "profile_picture_url": self.image_url, "wallet_address": self.wallet,
                "ticker": self.ticker, "token_address": self.token_address,
                "verified": self.verified, "is_live": self.is_live,
                "created_at": iso(self.created_at)}


@dataclass
class Settings:
    comments_shape: str = "documented"
    verify_rejects: bool = False
    skill_version: str = SKILL_VERSION
    viewer_interval: float = 0.0
    idle_viewers: int = 0  # viewer count reported while live when the simulator is off
    register_shape: str = "documented"
    rtmp_shape: str = "documented"
    field_drift: str = "none"
    comments_order: str = "newest_first"  # the documented shape's page order (the reference is silent)
    # Socket.IO switches (see the module docstring): all off = as strict as the reference
    socket_ack: bool = False          # acknowledge joinRoom/leaveRoom with {ok, roomId}
    joined_room_event: bool = False   # emit joinedRoom {roomId} after a join (an older platform version)
    socket_extras: bool = False       # payloads also carry the fields other clients observed

    SWITCHES = ("verify_rejects", "socket_ack", "joined_room_event", "socket_extras")

    def update(self, data: dict[str, Any]) -> None:
        for name, allowed in (("comments_shape", COMMENT_SHAPES), ("register_shape", REGISTER_SHAPES),
                              ("rtmp_shape", RTMP_SHAPES), ("field_drift", tuple(FIELD_DRIFT)),
                              ("comments_order", COMMENTS_ORDERS)):
            if name in data:
                if data[name] not in allowed:
                    raise ApiError(400, f"{name} must be one of {', '.join(allowed)}")
                setattr(self, name, data[name])
        for name in self.SWITCHES:
            if name in data:
                if not isinstance(data[name], bool):
                    raise ApiError(400, f"{name} must be true or false")
                setattr(self, name, data[name])
        if "skill_version" in data:
            version = str(data["skill_version"]).strip()
            if not version or len(version) > 32:
                raise ApiError(400, "skill_version must be a short non-empty string")
            self.skill_version = version
        if "viewer_interval" in data:
            self.viewer_interval = max(0.0, float(data["viewer_interval"]))
        if "idle_viewers" in data:
            self.idle_viewers = max(0, min(1_000_000, int(data["idle_viewers"])))


class Platform:
    """All agents, sessions, chats, tokens and trades of one sandbox."""

    def __init__(self, *, settings: Settings | None = None, state_dir: Path | None = None,
                 rtmp_url: str = "rtmp://127.0.0.1:1935/live") -> None:
        self.settings = settings or Settings()
        self.state_dir = state_dir
        self.rtmp_url = rtmp_url
        self.origin = "http://127.0.0.1"
        self.agents: dict[str, Agent] = {}  # by user_id
        self.chats: dict[str, deque[ChatEvent]] = {}
        self.recorded: deque[Session] = deque(maxlen=MAX_RECORDED_SESSIONS)
        self.tokens: dict[str, Token] = {}
        self.trades: deque[dict[str, Any]] = deque(maxlen=MAX_TRADES)
        self.recordings_done: dict[str, dict[str, Any]] = {}  # path -> info
        self.ids = IdGen()
        self.chat_seq = int(time.time() * 1000)  # numeric chat_event_ids: increasing, also across restarts
        self.emit: Emitter | None = None
        self.event_hook: Callable[[dict[str, Any]], object] | None = None  # RTMP entries to the log
        self._load()

    # ----- persistence (agents only) -------------------------------------------------------
    def _state_file(self) -> Path | None:
        return self.state_dir / "sandbox-state.json" if self.state_dir else None

    def _load(self) -> None:
        path = self._state_file()
        if not path or not path.exists():
            return
        data = json.loads(path.read_text())
        for raw in data.get("agents", []):
            agent = Agent(**{k: raw[k] for k in Agent.PERSISTED if k in raw})
            self.agents[agent.user_id] = agent
            self.chats[agent.user_id] = deque(maxlen=MAX_CHAT_PER_STREAMER)
            if agent.token_address:
                self.tokens[agent.token_address] = Token(agent.token_address, agent.user_id, agent.name,
                                                         agent.ticker, agent.image_url, agent.created_at)

    def save(self) -> None:
        path = self._state_file()
        if not path:
            return
        agents = [{k: getattr(a, k) for k in Agent.PERSISTED} for a in self.agents.values()]
        write_json(path, {"agents": agents}, dir_mode=None)

    # ----- lookups ---------------------------------------------------------------------------
    def by_token(self, token: str) -> Agent | None:
        for agent in self.agents.values():
            if secrets.compare_digest(agent.access_token.encode(), token.encode("utf-8", "replace")):
                return agent
        return None

    def agent(self, user_id: str) -> Agent:
        agent = self.agents.get(user_id)
        if agent is None:
            raise ApiError(404, "User not found")
        return agent

    def find(self, identifier: str) -> Agent | None:
        if identifier in self.agents:
            return self.agents[identifier]
        for agent in self.agents.values():
            if agent.name.lower() == identifier.lower():
                return agent
        return None

    def the_agent(self, user_id: str | None) -> Agent:
        """The agent named by ``user_id``, or the only registered one (for the control surface)."""
        if user_id:
            return self.agent(user_id)
        if len(self.agents) == 1:
            return next(iter(self.agents.values()))
        raise ApiError(400, "userDbId is required when there is not exactly one registered agent")

    def viewers_of(self, agent: Agent) -> int:
        if not agent.is_live:
            return 0
        return agent.viewers if self.settings.viewer_interval > 0 else self.settings.idle_viewers

    # ----- registration and verification ----------------------------------------------------
    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = ("agent_name", "agent_description", "image_url", "wallet_address", "ticker")
        missing = [f for f in fields if not isinstance(body.get(f), str) or not body[f].strip()]
        if missing:
            raise ApiError(400, f"Missing or invalid required fields: {', '.join(missing)}")
        name, ticker, wallet = body["agent_name"].strip(), body["ticker"].strip(), body["wallet_address"].strip()
        if len(name) > MAX_NAME:
            raise ApiError(400, f"agent_name must be at most {MAX_NAME} characters")
        if len(ticker) > MAX_TICKER:
            raise ApiError(400, f"ticker must be at most {MAX_TICKER} characters")
        if solana_key_problem(wallet) is not None:
            raise ApiError(400, "wallet_address must be a valid Solana base58 public key")
        if self.find(name) is not None:
            raise ApiError(400, "Agent name already taken")
        agent = Agent(agent_id=f"agent_{secrets.token_hex(6)}", user_id=str(uuid.uuid4()), name=name,
                      description=body["agent_description"].strip()[:1000], image_url=body["image_url"].strip()[:2000],
                      wallet=wallet, ticker=ticker, access_token=f"rtk_{secrets.token_hex(24)}",
                      created_at=time.time(), fid=secrets.randbelow(900_000) + 100_000)
        self.agents[agent.user_id] = agent
        self.chats[agent.user_id] = deque(maxlen=MAX_CHAT_PER_STREAMER)
        self.save()
        answer: dict[str, Any] = {"access_token": agent.access_token, "agent_id": agent.agent_id,
                                  "userDbId": agent.user_id, "wallet_address": agent.wallet, "token_address": "",
                                  "token_ticker": ""}
        shape = self.settings.register_shape
        if shape == "nulls":
            answer.update(wallet_address=None, token_address=None, token_ticker=None)
        elif shape in ("minimal", "token_only"):
            answer = {"access_token": agent.access_token, **({"userDbId": agent.user_id} if shape == "minimal" else {})}
        return {"data": answer} if shape == "wrapped" else answer

    def prepare_verify(self, agent: Agent) -> dict[str, Any]:
        if agent.verification_code is None:
            agent.verification_code = secrets.token_hex(4).upper()
            self.save()
        return {"verification_message": VERIFY_TEXT + agent.verification_code}

    def verify(self, agent: Agent, body: dict[str, Any]) -> dict[str, Any]:
        if agent.verification_code is None:
            raise ApiError(400, "No verification message yet")
        url = body.get("tweet_url")
        if not isinstance(url, str) or not TWEET_URL.match(url.strip()):
            raise ApiError(400, "Invalid tweet URL")
        if self.settings.verify_rejects:
            raise ApiError(400, "Tweet doesn't contain the code")
        agent.verified = True
        self.save()
        return {"verified": True}

    # ----- RTMP keys and the ingest callbacks ----------------------------------------------
    def new_rtmp_key(self, agent: Agent) -> dict[str, Any]:
        if agent.rtmp_key:
            agent.old_keys = ([*agent.old_keys, agent.rtmp_key])[-MAX_OLD_KEYS:]
        agent.rtmp_key = f"sk_{secrets.token_hex(16)}"
        self.save()
        shape = self.settings.rtmp_shape
        url_field, key_field = RTMP_FIELDS[shape.removesuffix("_data")]
        answer = {url_field: self.rtmp_url, key_field: agent.rtmp_key}
        return {"data": answer} if shape.endswith("_data") else answer

    def drifted(self, data: dict[str, Any], *fields: str) -> dict[str, Any]:
        """``data`` with ``fields`` renamed as the ``field_drift`` setting says (unchanged for "none")."""
        renames = FIELD_DRIFT[self.settings.field_drift]
        return {(renames.get(k, k) if k in fields else k): v for k, v in data.items()}

    def key_owner(self, key: str) -> tuple[Agent | None, str]:
        """Who issued ``key`` and whether it is "current", "superseded" or "unknown"."""
        for agent in self.agents.values():
            if agent.rtmp_key and secrets.compare_digest(agent.rtmp_key.encode(), key.encode("utf-8", "replace")):
                return agent, "current"
            if key in agent.old_keys:
                return agent, "superseded"
        return None, "unknown"

    async def on_publish(self, key: str, *, refused_by_fault: bool = False) -> bool:
        agent, state = self.key_owner(key)
        accepted = agent is not None and state == "current" and not refused_by_fault
        self._rtmp_event("publish", 200 if accepted else 403, agent, state,
                         **({"fault": True, "fault_kind": "publish_refused"} if refused_by_fault else {}))
        if accepted and agent is not None:
            was_live = agent.is_live
            agent.publishing_key = key
            await self._maybe_went_live(agent, was_live)
        return accepted

    async def on_publish_done(self, key: str) -> None:
        agent, state = self.key_owner(key)
        self._rtmp_event("publish_done", 200, agent, state)
        if agent is not None and agent.publishing_key == key:
            agent.publishing_key = None
            if agent.session is not None:
                agent.session.live_since = None

    def on_record_done(self, key: str, path: str) -> None:
        agent, state = self.key_owner(key)
        self.recordings_done[path] = {"agent": agent.name if agent else None,
                                      "userDbId": agent.user_id if agent else None, "done_at": iso(time.time())}
        self._rtmp_event("record_done", 200, agent, state)

    def _rtmp_event(self, what: str, status: int, agent: Agent | None, key_state: str, **extra: Any) -> None:
        if self.event_hook:
            self.event_hook({"method": "RTMP", "path": what, "event": f"RTMP {what}", "status": status,
                             "key": key_state, "agent": agent.name if agent else None, **extra})

    async def _maybe_went_live(self, agent: Agent, was_live: bool) -> None:
        if agent.is_live and not was_live and agent.session is not None:
            agent.session.live_since = time.time()
            agent.viewers = max(agent.viewers, 1)
            await self._emit("session_started", {**agent.session.public(self.viewers_of(agent), True),
                                                 "username": agent.name}, f"live_{agent.user_id}")

    # ----- stream session -------------------------------------------------------------------
    async def stream_start(self, agent: Agent) -> dict[str, Any]:
        if agent.session is None:
            was_live = agent.is_live
            agent.session = Session(str(uuid.uuid4()), agent.user_id, f"{agent.name} live", time.time())
            await self._maybe_went_live(agent, was_live)
        if agent.verified and not agent.token_address:
            address = base58.encode(secrets.token_bytes(32))
            agent.token_address = address
            self.tokens[address] = Token(address, agent.user_id, agent.name, agent.ticker, agent.image_url, time.time())
            self.save()
        return {"success": True, "token": {"name": agent.name, "ticker": agent.ticker, "imageUrl": agent.image_url,
                                           "tokenAddress": agent.token_address, "tokenType": "meteora-dbc"}}

    def stream_status(self, agent: Agent) -> dict[str, Any]:
        live = agent.is_live
        since = agent.session.live_since if live and agent.session else None
        return self.drifted({"is_live": live, "viewers": self.viewers_of(agent),
                             "uptime_seconds": int(time.time() - since) if since else 0,
                             "token_address": agent.token_address, "userDbId": agent.user_id}, "viewers")

    def stream_stop(self, agent: Agent) -> dict[str, Any]:
        session = self.require_session(agent)
        viewers = self.viewers_of(agent)
        session.ended_at = time.time()
        session.final_viewers = viewers
        self.recorded.appendleft(session)
        agent.session = None
        agent.viewers = 0
        return {"status": "stopped", "duration_seconds": int(session.ended_at - session.started_at), "viewers": viewers}

    def require_session(self, agent: Agent) -> Session:
        if agent.session is None:
            raise ApiError(409, "No active session")
        return agent.session

    def set_thumbnail(self, agent: Agent, data: bytes, info: dict[str, Any]) -> dict[str, Any]:
        self.require_session(agent)
        agent.thumbnail, agent.thumbnail_info = data, info
        agent.thumbnail_count += 1
        if self.state_dir:
            folder = self.state_dir / "thumbnails"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{agent.user_id}.{info['format']}").write_bytes(data)
        url = f"{self.origin}/_sandbox/thumbnails/{agent.user_id}?v={agent.thumbnail_count}"
        return {"message": "Thumbnail updated successfully", "thumbnail_url": url}

    # ----- chat -------------------------------------------------------------------------------
    async def add_chat(self, streamer: Agent, *, text: str, username: str, user_id: str, wallet: str,
                       pfp: str, fid: int, type_: str = "message", tip_data: dict[str, Any] | None = None,
                       trade_data: dict[str, Any] | None = None) -> ChatEvent:
        if len(text) > MAX_TEXT:
            raise ApiError(400, f"Message too long (max {MAX_TEXT} characters)")
        self.chat_seq += 1
        event = ChatEvent(self.ids.next(), self.chat_seq, streamer.user_id,
                          streamer.session.session_id if streamer.session else "",
                          type_, text, time.time(), user_id, username, username, pfp, wallet, fid, tip_data, trade_data)
        self.chats.setdefault(streamer.user_id, deque(maxlen=MAX_CHAT_PER_STREAMER)).append(event)
        await self._emit("message", event.socket(self.settings.socket_extras), streamer.user_id)
        return event

    async def warn(self, streamer: Agent, text: str) -> ChatEvent:
        """A notice from the platform itself (a shutdown warning): a chat event of type
        ``warning`` with no sender id, wallet or fid (see the module docstring)."""
        if not text.strip():
            raise ApiError(400, "text is required")
        return await self.add_chat(streamer, text=text, username=PLATFORM_NAME, user_id="", wallet="", pfp="",
                                   fid=0, type_="warning")

    def find_chat(self, streamer: Agent, message_id: str) -> ChatEvent:
        for event in self.chats.get(streamer.user_id, ()):
            if message_id in (event.id, str(event.seq)):
                return event
        raise ApiError(404, "Message not found")

    async def pin(self, streamer: Agent, message_id: str, pinned: bool = True) -> dict[str, Any]:
        """Pin (or unpin) a message of the current session: ``pinned`` in ``{streamer_id}/{session_id}``."""
        session = self.require_session(streamer)
        event = self.find_chat(streamer, message_id)
        data = {"pinned": pinned, "streamer_id": streamer.user_id, "session_id": session.session_id,
                "message": event.socket(self.settings.socket_extras)}
        await self._emit("pinned", data, f"{streamer.user_id}/{session.session_id}")
        return data

    async def agent_chat(self, agent: Agent, body: dict[str, Any]) -> dict[str, Any]:
        message, dest = body.get("message"), body.get("destination_user_id")
        if not isinstance(message, str) or not message.strip():
            raise ApiError(400, "message is required")
        if not isinstance(dest, str) or not dest:
            raise ApiError(400, "destination_user_id is required")
        target = self.agents.get(dest)
        if target is None:
            raise ApiError(404, "Destination user not found")
        event = await self.add_chat(target, text=message, username=agent.name, user_id=agent.user_id,
                                    wallet=agent.wallet, pfp=agent.image_url, fid=agent.fid)
        return {"success": True, "message_id": event.id, "chat_event_id": str(event.seq)}

    def page(self, streamer_id: str, limit: int, before: str | None) -> list[ChatEvent]:
        """The ``limit`` newest events older than ``before``, oldest first."""
        events = [e for e in self.chats.get(streamer_id, ()) if before is None or e.older_than(before)]
        return events[-limit:] if limit > 0 else []

    def comments(self, query: dict[str, str]) -> Any:
        user_id = query.get("userDbId")
        if not user_id:
            raise ApiError(400, "userDbId is required")
        self.agent(user_id)
        limit = parse_limit(query.get("limit"), default=50, maximum=100)
        before = parse_chat_cursor(query.get("beforeId"), "beforeId")
        return comments_page(self.page(user_id, limit, before), self.settings.comments_shape,
                             self.settings.comments_order)

    # ----- socket.io ----------------------------------------------------------------------------
    async def _emit(self, event: str, data: dict[str, Any], room: str) -> None:
        if self.emit is not None:
            await self.emit(event, data, room)

    # ----- snapshots -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        agents = []
        for a in self.agents.values():
            agents.append({"name": a.name, "agent_id": a.agent_id, "userDbId": a.user_id, "verified": a.verified,
                           "verification_pending": a.verification_code is not None and not a.verified,
                           "token_address": a.token_address, "has_rtmp_key": a.rtmp_key is not None,
                           "superseded_keys": len(a.old_keys), "publishing": a.publishing_key is not None,
                           "is_live": a.is_live, "viewers": self.viewers_of(a), "followers": a.followers,
                           "session": a.session.public(self.viewers_of(a), a.is_live) if a.session else None,
                           "thumbnail": a.thumbnail_info, "thumbnails_uploaded": a.thumbnail_count,
                           "chat_messages": len(self.chats.get(a.user_id, ()))})
        return {"agents": agents, "settings": asdict(self.settings), "rtmp_url": self.rtmp_url,
                "recorded_sessions": len(self.recorded), "trades": len(self.trades)}


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "limit must be an integer") from None
    if value < 1:
        raise ApiError(400, "limit must be at least 1")
    return min(value, maximum)


def parse_cursor(raw: str | None, name: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"[0-9a-f]{24}", raw):
        raise ApiError(400, f"Invalid {name}")
    return raw


def parse_chat_cursor(raw: str | None, name: str) -> str | None:
    """A chat cursor: the 24-hex ``_id`` or the numeric ``chat_event_id``."""
    if raw is not None and raw.isdigit() and len(raw) <= 20:
        return raw
    return parse_cursor(raw, name)
