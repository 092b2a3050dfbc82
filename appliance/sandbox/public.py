"""The public (no-auth) discovery API of the sandbox: users, sessions, tokens, trades, chat.

Field names are the ones the reference documents; extra fields are harmless additions. Lists
are bare JSON arrays except ``/chat/`` (``{"chats": [...]}``, documented) and
``/trades/recent/`` (``{"trades": [...], "next_cursor": ...}``). Unknown ids answer 404.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Any

from .platform import (
    Agent,
    ApiError,
    Platform,
    parse_chat_cursor,
    parse_cursor,
    parse_limit,
)


def _live_row(platform: Platform, agent: Agent, rank: int) -> dict[str, Any]:
    token = platform.tokens.get(agent.token_address)
    return platform.drifted({"user_id": agent.user_id, "username": agent.name, "ticker": agent.ticker,
                             "token_address": agent.token_address,
                             "market_cap": round(token.market_cap, 2) if token else 0,
                             "rank": rank, "viewers": platform.viewers_of(agent),
                             "session_id": agent.session.session_id if agent.session else None},
                            "user_id", "market_cap")


def search(platform: Platform, query: str) -> list[dict[str, Any]]:
    q = query.lower()
    return [a.summary() for a in platform.agents.values() if q in a.name.lower()][:50]


def live(platform: Platform) -> list[dict[str, Any]]:
    agents = [a for a in platform.agents.values() if a.is_live]
    return [_live_row(platform, a, i + 1) for i, a in enumerate(agents)]


def newest(platform: Platform) -> list[dict[str, Any]]:
    agents = sorted(platform.agents.values(), key=lambda a: a.created_at, reverse=True)
    return [a.summary() for a in agents[:20]]


def metadata(platform: Platform, user_id: str) -> dict[str, Any]:
    agent = platform.agent(user_id)
    return {**agent.summary(), "social_links": [], "followers": agent.followers}


def streamer(platform: Platform, identifier: str) -> dict[str, Any]:
    agent = platform.find(identifier)
    if agent is None:
        raise ApiError(404, "Streamer not found")
    session = agent.session.public(platform.viewers_of(agent), agent.is_live) if agent.session else None
    return {**agent.summary(), "streamer_id": agent.user_id, "followers": agent.followers,
            "viewers": platform.viewers_of(agent), "session": session}


def active_sessions(platform: Platform) -> list[dict[str, Any]]:
    return [{**a.session.public(platform.viewers_of(a), a.is_live), "username": a.name}
            for a in platform.agents.values() if a.session is not None]


def active_session(platform: Platform, streamer_id: str) -> dict[str, Any]:
    agent = platform.agent(streamer_id)
    if agent.session is None:
        raise ApiError(404, "No active session")
    return {**agent.session.public(platform.viewers_of(agent), agent.is_live), "username": agent.name}


def recorded(platform: Platform, streamer_id: str | None = None) -> list[dict[str, Any]]:
    if streamer_id is not None:
        platform.agent(streamer_id)
    return [s.public() for s in platform.recorded if streamer_id is None or s.streamer_id == streamer_id]


def scheduled(platform: Platform, streamer_id: str | None = None) -> list[dict[str, Any]]:
    if streamer_id is not None:
        platform.agent(streamer_id)
    return []  # nothing schedules streams through the agent API


def join(platform: Platform, session_id: str) -> dict[str, Any]:
    for agent in platform.agents.values():
        if agent.session is not None and agent.session.session_id == session_id:
            return {"token": f"sandbox-livekit.{secrets.token_urlsafe(24)}", "url": "wss://livekit.invalid",
                    "room": session_id, "streamer_id": agent.user_id}
    raise ApiError(404, "Session not found")


def tokens_top(platform: Platform) -> list[dict[str, Any]]:
    tokens = sorted(platform.tokens.values(), key=lambda t: t.market_cap, reverse=True)
    return [{"user_id": t.user_id, "name": t.name, "ticker": t.ticker, "address": t.address,
             "current_market_cap": round(t.market_cap, 2), "rank": i + 1} for i, t in enumerate(tokens)]


def tokens_trending(platform: Platform) -> list[dict[str, Any]]:
    rows = [{"username": t.name, "ticker": t.ticker, "address": t.address,
             "growth_24h": t.stats()["growth"]["24h"], "market_cap": round(t.market_cap, 2)}
            for t in platform.tokens.values()]
    return sorted(rows, key=lambda r: r["growth_24h"], reverse=True)


def token_stats(platform: Platform, address: str) -> dict[str, Any]:
    token = platform.tokens.get(address)
    if token is None:
        raise ApiError(404, "Token not found")
    return platform.drifted(token.stats(), "market_cap")


def trades_recent(platform: Platform, query: dict[str, str], address: str | None = None) -> dict[str, Any]:
    if address is not None and address not in platform.tokens:
        raise ApiError(404, "Token not found")
    limit = parse_limit(query.get("limit"), default=50, maximum=100)
    cursor = parse_cursor(query.get("cursor"), "cursor")
    rows = [t for t in platform.trades if (address is None or t["address"] == address)
            and (cursor is None or t["id"] < cursor)][:limit]
    return {"trades": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}


def trades_top(platform: Platform, query: dict[str, str], by: str) -> list[dict[str, Any]]:
    limit = parse_limit(query.get("limit"), default=20, maximum=100)
    key = "volume" if by == "volume" else "trade_count"
    tokens = sorted(platform.tokens.values(), key=lambda t: getattr(t, key), reverse=True)[:limit]
    return [{"address": t.address, "ticker": t.ticker, "name": t.name, "volume": round(t.volume, 2),
             "trade_count": t.trade_count, "window": query.get("window", "24h"), "rank": i + 1}
            for i, t in enumerate(tokens)]


def chat(platform: Platform, query: dict[str, str]) -> dict[str, Any]:
    streamer_id = query.get("streamer_id")
    if not streamer_id:
        raise ApiError(400, "streamer_id is required")
    platform.agent(streamer_id)
    limit = parse_limit(query.get("limit"), default=50, maximum=100)
    before = parse_chat_cursor(query.get("before_chat_event_id"), "before_chat_event_id")
    return {"chats": [e.public() for e in reversed(platform.page(streamer_id, limit, before))]}


def top_tippers(platform: Platform, query: dict[str, str]) -> list[dict[str, Any]]:
    streamer_id = query.get("streamer_id")
    if not streamer_id:
        raise ApiError(400, "streamer_id is required")
    platform.agent(streamer_id)
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: {"total_amount": 0.0, "tip_count": 0})
    for event in platform.chats.get(streamer_id, ()):
        if event.type == "tip" and event.tip_data:
            row = totals[event.sender_user_id]
            row.update(user_id=event.sender_user_id, username=event.sender_username,
                       wallet_address=event.sender_wallet)
            row["total_amount"] = round(row["total_amount"] + float(event.tip_data.get("amount", 0)), 6)
            row["tip_count"] += 1
    return sorted(totals.values(), key=lambda r: r["total_amount"], reverse=True)[:50]
