"""Every spelling retake.tv has been seen to use, turned into one model — the table is below.

Our models were first written from the skill document; other clients, tests and older skill
copies show the platform answering in other spellings too. :data:`ALIASES` keeps, per answer and
per field, every known spelling in order of preference (a dotted name walks into a nested
object: ``author.fusername``). A value that is absent, ``null`` or ``""`` falls through to the
next spelling, then to the field's default, so a ``null`` never costs more than that one field.
The README's "Accepted payload variants" section lists the same table for operators.

Comments (:class:`Comment`, :func:`normalize_comment`, :func:`parse_comments`) are the part that
needs more than renaming: text and names are sanitized; a comment without readable text is
skipped (a logged protocol error, counted through ``on_skip``), never handed on empty; an author
without a name is named by a short form of the wallet address, so two anonymous viewers stay two;
``user_id`` is always the *platform* user id (the Farcaster ``fid`` has its own field); pages are
returned oldest first. The original item is kept in ``Comment.raw`` for debugging, out of
``repr`` and ``model_dump``, and never logged.

Nothing here imports the rest of the client: ``models.py`` builds its answer models on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..core.errors import RetakeProtocolError
from ..core.sanitize import clean_text

log = logging.getLogger("appliance.retake")

MAX_TEXT = 500  # characters of a comment kept (sanitized)
MAX_NAME = 32
MAX_IDENT = 128
MONEY_KINDS = ("tip", "trade")

# answer -> field -> spellings, most preferred first. Keep README "Accepted payload variants" in step.
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "comment": {
        "id": ("_id", "chat_event_id", "id", "comment_id", "message_id"),
        "text": ("text", "comment", "message", "content", "body"),
        "timestamp": ("timestamp", "createdAt", "created_at", "sent_at", "time"),
        "username": ("author.fusername", "author.username", "author.display_name", "author.displayName",
                     "sender_username", "sender_display_name", "username", "author_username", "display_name",
                     "user.username"),
        "user_id": ("sender_user_id", "author._id", "author.id", "author.user_id", "author.userId",
                    "author.userDbId", "user_id", "userId", "userDbId", "user._id", "user.id"),
        "wallet_address": ("author.walletAddress", "author.wallet_address", "sender_wallet_address",
                           "author_wallet", "wallet_address", "walletAddress", "user.walletAddress"),
        "fid": ("author.fid", "sender_fid", "fid"),
        "seq": ("chat_event_id",),
        "kind": ("type", "kind"),
        "amount": ("tip_data.amount", "trade_data.amount", "amount", "usdAmount"),
    },
    # where a page of comments keeps its items (a bare array is a page too; "data" may nest once)
    "comments_page": {"items": ("comments", "chats", "messages", "items", "data")},
    "register": {
        "access_token": ("access_token", "accessToken"),
        "agent_id": ("agent_id", "agentId"),
        "userDbId": ("userDbId", "user_db_id", "user_id", "userId"),
        "wallet_address": ("wallet_address", "walletAddress"),
        "token_address": ("token_address", "tokenAddress"),
        "token_ticker": ("token_ticker", "tokenTicker", "ticker"),
    },
    "rtmp": {
        "url": ("url", "rtmp_url", "rtmpUrl"),
        "key": ("key", "stream_key", "streamKey"),
    },
    "stream_status": {
        "is_live": ("is_live", "isLive", "live"),
        "viewers": ("viewers", "viewer_count", "viewerCount"),
        "uptime_seconds": ("uptime_seconds", "uptimeSeconds", "uptime"),
        "token_address": ("token_address", "tokenAddress"),
        "userDbId": ("userDbId", "user_id", "userId"),
    },
    "token_stats": {
        "current_price": ("current_price", "currentPrice", "price"),
        "market_cap": ("market_cap", "current_market_cap", "marketCap", "marketcap"),
        "all_time_high": ("all_time_high", "allTimeHigh", "ath"),
    },
    "user_summary": {
        "user_id": ("user_id", "userDbId", "userId"),
        "market_cap": ("market_cap", "current_market_cap", "marketCap"),
    },
    "token_summary": {
        "user_id": ("user_id", "userDbId", "userId"),
        "current_market_cap": ("current_market_cap", "market_cap", "marketCap"),
        "market_cap": ("market_cap", "current_market_cap", "marketCap"),
    },
}


# --- generic: pick a value, lenient scalars -------------------------------------------------------

def _walk(item: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(item, Mapping):
            return None
        item = item.get(part)
    return item


def pick(item: Any, spellings: tuple[str, ...]) -> Any:
    """The first spelling whose value is present and not null/empty; None when there is none."""
    for dotted in spellings:
        value = _walk(item, dotted)
        if value is not None and value != "" and value != {} and value != []:
            return value
    return None


def unwrap(payload: Any, table: str) -> Any:
    """``{"data": {...}}`` around an answer that has none of the table's fields at the top."""
    if isinstance(payload, Mapping) and isinstance(payload.get("data"), Mapping):
        tops = {s.split(".")[0] for spellings in ALIASES[table].values() for s in spellings}
        if not tops & set(payload):
            return payload["data"]
    return payload


def canonical(payload: Any, table: str, *, keep_extra: bool = False) -> Any:
    """The answer with each field of ``table`` under its canonical name (for a model's before-validator)."""
    data = unwrap(payload, table)
    if not isinstance(data, Mapping):
        return data
    out: dict[str, Any] = dict(data) if keep_extra else {}
    for name, spellings in ALIASES[table].items():
        value = pick(data, spellings)
        if value is not None:
            out[name] = value
    return out


def text_or_empty(value: Any) -> str:
    """A string field that never fails: null and odd types are "", numbers are their digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def number_or_none(value: Any) -> float | None:
    """A finite number from a number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def count_or_zero(value: Any) -> int:
    number = number_or_none(value)
    return max(0, int(number)) if number is not None else 0


Text = Annotated[str, BeforeValidator(text_or_empty)]
Number = Annotated[float | None, BeforeValidator(number_or_none)]
Count = Annotated[int, BeforeValidator(count_or_zero)]


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (``Z`` or an offset; naive is UTC), epoch seconds or milliseconds; None if unreadable."""
    if isinstance(value, Mapping):
        value = value.get("$date")
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
            number = float(value)
            return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


# --- comments ----------------------------------------------------------------------------------------

class Comment(BaseModel):
    """One chat message, whichever shape it arrived in; text and names already sanitized."""

    model_config = ConfigDict(extra="ignore")

    id: str
    text: str  # sanitized, never empty
    username: str  # sanitized display name; else a short form of the wallet; else "viewer"
    user_id: str = ""  # the platform's user id where the payload has one (never the fid)
    wallet_address: str = ""
    fid: str = ""  # Farcaster fid, "" if none
    timestamp: datetime | None = None
    seq: int | None = None  # numeric chat_event_id when present
    kind: str = "message"  # "message", "tip", "trade", ...
    amount: float | None = None  # tip / trade amount when the payload has one
    raw: dict[str, Any] = Field(default_factory=dict, repr=False, exclude=True)  # the original item


class UnreadableComment(RetakeProtocolError):
    """A comment item we cannot hand on (no text, not an object); ``reason`` is a short key for counting."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(f"stream/comments: {message}")
        self.reason = reason


def short_wallet(wallet: str) -> str:
    """``4Nd1…x9Kq``: the first and last four characters, as explorers (and the platform) show them.
    Two wallets get the same short form only if both ends match (about 1 in 10^14 for base58)."""
    kept = re.sub(r"[^0-9A-Za-z]", "", wallet)
    return kept if len(kept) <= 10 else f"{kept[:4]}…{kept[-4:]}"


def _ident(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("$oid")
    return clean_text(text_or_empty(value), MAX_IDENT)


def _kind(value: Any) -> str:
    kind = re.sub(r"[^a-z0-9_-]", "", text_or_empty(value).lower())[:24]
    return kind or "message"


def _synthetic_id(item: Mapping[str, Any]) -> str:
    """A stable id for an item that has none (the same item served twice gets the same id)."""
    canonical_json = json.dumps(item, sort_keys=True, default=str, ensure_ascii=True)
    return "h_" + hashlib.sha256(canonical_json.encode()).hexdigest()[:24]


def normalize_comment(item: Any) -> Comment:
    """One comment item (a ``stream/comments`` entry or a Socket.IO ``message`` payload) as a
    :class:`Comment`; :class:`UnreadableComment` when it has no readable text."""
    if not isinstance(item, Mapping):
        raise UnreadableComment(f"a comment must be an object, not {type(item).__name__}", "not_object")
    spell = ALIASES["comment"]
    kind = _kind(pick(item, spell["kind"]))
    amount = number_or_none(pick(item, spell["amount"]))
    raw_text = pick(item, spell["text"])
    text = clean_text(text_or_empty(raw_text), MAX_TEXT)
    if not text and kind in MONEY_KINDS and amount is not None:
        text = f"{kind} {amount:g}"
    if not text:
        if not any(_walk(item, dotted) is not None for dotted in spell["text"]):
            raise UnreadableComment(f"no text under any known field ({', '.join(spell['text'])})", "no_text")
        raise UnreadableComment("text is empty once control characters are removed", "empty_text")
    wallet = clean_text(text_or_empty(pick(item, spell["wallet_address"])), 100)
    name = clean_text(text_or_empty(pick(item, spell["username"])), MAX_NAME)
    seq = number_or_none(pick(item, spell["seq"]))
    return Comment(
        id=_ident(pick(item, spell["id"])) or _synthetic_id(item),
        text=text,
        username=name or (short_wallet(wallet) if wallet else "") or "viewer",
        user_id=_ident(pick(item, spell["user_id"])),
        wallet_address=wallet,
        fid=_ident(pick(item, spell["fid"])),
        timestamp=parse_time(pick(item, spell["timestamp"])),
        seq=int(seq) if seq is not None and seq.is_integer() else None,
        kind=kind,
        amount=amount,
        raw=dict(item),
    )


def comment_items(payload: Any) -> list[Any]:
    """The list of items of a comments page; :class:`RetakeProtocolError` for an unknown page shape."""
    for _depth in range(3):
        if isinstance(payload, list):
            return payload
        if not isinstance(payload, Mapping):
            break
        found = next((payload[k] for k in ALIASES["comments_page"]["items"]
                      if isinstance(payload.get(k), (list, Mapping))), None)
        if found is None:
            break
        payload = found
    keys = sorted(clean_text(k, 32) for k in payload)[:6] if isinstance(payload, Mapping) else "-"
    raise RetakeProtocolError("stream/comments: expected a list of comments "
                              f"(got {type(payload).__name__} with keys {keys})")


def _order_number(comment: Comment) -> int | None:
    """``seq`` (the numeric chat_event_id), else a numeric ``id``: the platform's own order."""
    if comment.seq is not None:
        return comment.seq
    return int(comment.id) if comment.id.isdigit() and len(comment.id) <= 20 else None


def order_readable(comments: list[Comment]) -> bool:
    """Whether a page shows its own order: its ends differ in time or in the platform's numeric id.
    A page whose every comment has the same time (a burst within one second, timestamps to the
    second as in the reference) and no numeric id does not: its order is the shape's guess."""
    if len(comments) < 2:
        return True
    first, last = comments[0], comments[-1]
    if first.timestamp and last.timestamp and first.timestamp != last.timestamp:
        return True
    a, b = _order_number(first), _order_number(last)
    return a is not None and b is not None and a != b


def _shape_runs_newest_first(item: Any) -> bool:
    """The order a page of this item's shape is taken to run in when it does not show its own:
    newest first for the observed ``chat_event_id`` shape and for the documented one (the
    reference does not say; the platform's observed shape is newest first, and so is the sandbox's
    faithful mode), oldest first for the older shapes (``comment``/``createdAt``, skill 1.x)."""
    return isinstance(item, Mapping) and ("chat_event_id" in item or ("streamId" in item and "text" in item))


def _newest_first(items: list[Any], comments: list[Comment]) -> bool:
    """Whether the page runs newest first: read from its ends when they differ (timestamps, then
    numeric ids), else the order its shape is taken to run in (:func:`_shape_runs_newest_first`)."""
    if len(comments) >= 2 and order_readable(comments):
        first, last = comments[0], comments[-1]
        if first.timestamp and last.timestamp and first.timestamp != last.timestamp:
            return first.timestamp > last.timestamp
        return (_order_number(first) or 0) > (_order_number(last) or 0)
    return any(_shape_runs_newest_first(item) for item in items)


def oldest_first(comments: list[Comment], *, newest_first_page: bool) -> list[Comment]:
    """Order by timestamp (the platform's numeric ids break ties); without timestamps by those ids;
    else the page's own order. Sorting is stable, so equal keys keep the page's order."""
    page = list(reversed(comments)) if newest_first_page else list(comments)
    numbers = [_order_number(c) for c in page]
    if page and all(c.timestamp for c in page):
        ranked = sorted(zip(page, numbers, strict=False),
                        key=lambda p: (p[0].timestamp, p[1] if p[1] is not None else -1))
        return [c for c, _ in ranked]
    if page and all(n is not None for n in numbers):
        return [c for c, _ in sorted(zip(page, numbers, strict=False), key=lambda p: p[1] or 0)]
    return page


def parse_comments(payload: Any, *, on_skip: Callable[[str], None] | None = None) -> list[Comment]:
    """Every known shape of ``stream/comments``, oldest first; unreadable items are skipped and
    reported to ``on_skip(reason)``; an unknown page shape is :class:`RetakeProtocolError`."""
    items = comment_items(payload)
    comments: list[Comment] = []
    for item in items:
        try:
            comments.append(normalize_comment(item))
        except UnreadableComment as exc:
            fields = sorted(clean_text(k, 32) for k in item)[:8] if isinstance(item, Mapping) else []
            level = logging.INFO if exc.reason == "empty_text" else logging.WARNING
            log.log(level, "%s; skipped (fields %s)", exc.message, fields)
            if on_skip is not None:
                on_skip(exc.reason)
    return oldest_first(comments, newest_first_page=_newest_first(items, comments))


def access_token(payload: Any) -> str:
    """The registration's access token, found before anything else is read (it is never shown again)."""
    token = pick(unwrap(payload, "register"), ALIASES["register"]["access_token"])
    if not isinstance(token, str) or not token.strip():
        raise RetakeProtocolError("agent/register: the answer has no access_token",
                                  fix="the platform may still have registered the agent: contact retake.tv "
                                      "before registering again")
    return token.strip()
