"""Chat in: Socket.IO in real time, polling as the fallback and the catch-up, one ordered stream.

* :class:`SocketSource` — python-socketio's client joins the rooms of section 7 of the reference
  without waiting for an acknowledgement (none is documented): ``{userDbId}`` (``message`` =
  chat, tips, trades, platform notices), ``live_{userDbId}`` (``tip_received``, ``user_followed``,
  ``session_started``), ``{userDbId}/{session_id}`` (``pinned``) and ``trades_{tokenAddress}``
  (``newtrade``); it leaves them at stop. Reconnection (capped, jittered backoff) is the
  library's; every (re)connection reports a gap, which triggers a catch-up poll. Nothing secret
  is sent: the rooms are public.
* :class:`Pager` — ``stream/comments``: the newest page, then pages back with ``beforeId`` (the
  oldest id of the previous page) until it meets an id the journal knows — the persisted
  cursor — so a burst larger than ``limit`` during an outage is caught up, never dropped (at most
  ``chat.catch_up_pages`` pages; beyond that the loss is logged). Which end of a page is the
  oldest is read from the times; when a whole page shares one second, from the server's own
  answer to ``beforeId``.
* :class:`Sequencer` — both paths offer comments here; it drops ids it has seen, and releases
  the rest in order: by timestamp, then the numeric ``chat_event_id`` (or an ObjectId ``_id``, which
  sorts by creation), then arrival. Just before handing one on it asks the journal whether the
  message is already there under another id (:mod:`.twins`: Socket.IO and a page may show one
  message under two ids), so each message is handled once whichever path brought it. Socket messages
  wait a few tens of milliseconds (python-socketio hands each packet to its own thread, so two
  quick messages may arrive swapped), and after a socket gap they are held until the catch-up
  poll has been offered, so a caught-up older message never lands after a newer live one.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import RetakeProtocolError
from ..core.sanitize import clean_name, clean_text
from ..retake.client import RetakeClient
from ..retake.normalize import Comment, normalize_comment, order_readable

log = logging.getLogger("appliance.chat")

REORDER_S = 0.06       # how long a socket message waits for a swapped predecessor
HOLD_MAX_S = 8.0       # after a socket gap: socket messages wait at most this long for the catch-up
CHAT_KINDS = ("message", "tip", "trade", "follow")  # what viewers say or do; other types are not chat
OBJECT_ID = re.compile(r"[0-9a-f]{24}")  # MongoDB ObjectIds (the documented _id) sort by creation


def comment_epoch(comment: Comment) -> float | None:
    return comment.timestamp.timestamp() if isinstance(comment.timestamp, datetime) else None


def socket_origin(base_url: str) -> str:
    """``https://retake.tv/api/v1`` -> ``https://retake.tv`` (Socket.IO lives at ``/socket.io/``)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


# ----- ordering ----------------------------------------------------------------------------------

class Sequencer:
    """One ordered, de-duplicated stream of comments from any number of sources.

    ``deliver(comment, source)`` is called for each new comment, one at a time, in order, from
    whichever thread calls :meth:`release_due` (the loop's sequencer thread, or a test).
    ``known(id)`` drops an id on offer; ``seen(comment, source)``, asked at release, drops a
    message already delivered under another id (the journal's :meth:`~.journal.Journal.recognize`).
    """

    def __init__(self, *, deliver: Callable[[Comment, str], None], known: Callable[[str], bool],
                 seen: Callable[[Comment, str], bool] = lambda comment, source: False,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 reorder_s: float = REORDER_S, remember: int = 5000) -> None:
        self.deliver, self.known, self.seen, self.clock, self.wall = deliver, known, seen, clock, wall
        self.reorder_s = reorder_s
        self._heap: list[tuple[tuple[float, int, str, int], float, str, Comment]] = []
        self._pending: dict[str, Comment] = {}  # offered, not released yet (the fullest copy)
        self._recent: deque[str] = deque(maxlen=remember)
        self._recent_set: set[str] = set()
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._deliver_lock = threading.Lock()
        self._hold_until = 0.0
        self._delivering = False
        self.duplicates = 0
        self.late = 0
        self._newest_key: tuple[float, int, str, int] | None = None

    def _seen(self, comment_id: str) -> bool:
        return comment_id in self._pending or comment_id in self._recent_set or self.known(comment_id)

    def offer(self, comments: Iterable[Comment], source: str) -> int:
        """Queue the comments not seen before; returns how many were new."""
        arrival = self.wall()
        new = 0
        with self._cond:
            for comment in comments:
                if self._seen(comment.id):
                    self.duplicates += 1
                    self._enrich(comment, source)
                    continue
                ts = comment_epoch(comment)
                # time, then the numeric chat_event_id, then an ObjectId's own order, then arrival;
                # without a timestamp the chat_event_id alone orders (across polls and the socket)
                primary = ts if ts is not None else (0.0 if comment.seq is not None else arrival)
                key = (primary, comment.seq if comment.seq is not None else -1,
                       comment.id if OBJECT_ID.fullmatch(comment.id) else "", next(self._counter))
                due = self.clock() + (self.reorder_s if source == "socket" else 0.0)
                heapq.heappush(self._heap, (key, due, source, comment))
                self._pending[comment.id] = comment
                new += 1
            if new:
                self._cond.notify_all()
        return new

    def _enrich(self, comment: Comment, source: str) -> None:
        """A second copy of one socket message may carry a time the first lacked (``tip_received``
        has none, the ``message`` event of the same tip has one): keep it, so the page's copy of
        that message is recognised by its time."""
        if source != "socket" or comment.timestamp is None:
            return
        waiting = self._pending.get(comment.id)
        if waiting is not None:
            if waiting.timestamp is None:
                self._pending[comment.id] = comment
        else:
            self.seen(comment, source)  # already delivered: the journal fills in the time

    def hold(self, seconds: float = HOLD_MAX_S) -> None:
        """A socket gap: socket messages wait for the catch-up poll (at most ``seconds``)."""
        with self._cond:
            self._hold_until = self.clock() + seconds

    def release_hold(self) -> None:
        with self._cond:
            self._hold_until = 0.0
            self._cond.notify_all()

    def _due(self, entry: tuple[Any, float, str, Comment], now: float, force: bool) -> bool:
        _key, due, source, _comment = entry
        if force:
            return True
        if source == "socket" and now < self._hold_until:
            return False
        return now >= due

    def release_due(self, *, force: bool = False) -> int:
        """Deliver every comment that is due, in key order; ``force`` ignores waits and holds."""
        released = 0
        with self._deliver_lock:
            while True:
                with self._cond:
                    if not self._heap or not self._due(self._heap[0], self.clock(), force):
                        return released
                    key, _due, source, comment = heapq.heappop(self._heap)
                    comment = self._pending.pop(comment.id, comment)
                    if len(self._recent) == self._recent.maxlen:
                        self._recent_set.discard(self._recent[0])
                    self._recent.append(comment.id)
                    self._recent_set.add(comment.id)
                    self._delivering = True
                try:
                    if self.seen(comment, source):
                        self.duplicates += 1  # the other path brought it first, under another id
                        continue
                    if self._newest_key is not None and key < self._newest_key:
                        self.late += 1  # the socket lost it; the poll found it
                    else:
                        self._newest_key = key
                    self.deliver(comment, source)
                    released += 1
                except Exception:
                    log.exception("chat: handling comment %s failed", comment.id)
                finally:
                    with self._cond:
                        self._delivering = False

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything offered so far has been delivered (or ``timeout``)."""
        deadline = self.clock() + timeout
        while True:
            with self._cond:
                if not self._heap and not self._delivering:
                    return True
            if self.clock() >= deadline:
                return False
            time.sleep(0.01)

    def _next_wait(self) -> float:
        if not self._heap:
            return 1.0
        _key, due, source, _c = self._heap[0]
        if source == "socket" and self._hold_until > due:
            due = self._hold_until
        return max(0.0, min(1.0, due - self.clock()))

    def run(self, stop: threading.Event) -> None:
        """Release comments as they fall due until ``stop`` is set."""
        while not stop.is_set():
            self.release_due()
            with self._cond:
                self._cond.wait(self._next_wait() or 0.001)


# ----- polling -------------------------------------------------------------------------------------

class Pager:
    """``stream/comments`` back to the cursor: newest page first, then ``beforeId`` pages until a
    page holds a message ``known(comment)`` says was read already (by either path).

    ``beforeId`` is "the ``_id`` of the oldest message in the previous response"; the reference
    gives neither the page's order nor more than seconds in a timestamp, so a page whose messages
    share one second (a burst) does not show which end is the oldest (:func:`order_readable`).
    The server does: a ``beforeId`` that was not the oldest brings back messages of the page
    before. Then the other end is the oldest, and from then on every such page is read the other
    way round (``flip_unreadable``). A short page does not end the walk (a server may leave out
    what it cannot show); an empty page or a known message does.
    """

    def __init__(self, client: RetakeClient, user_db_id: str, *, limit: int, max_pages: int,
                 known: Callable[[Comment], bool]) -> None:
        self.client, self.user_db_id = client, user_db_id
        self.limit, self.max_pages, self.known = limit, max_pages, known
        self.pages_fetched = 0
        self.overflows = 0
        self.flip_unreadable = False  # learned: pages without a readable order come the other way

    def _page(self, before: str | None) -> list[Comment]:
        """One page, oldest first (a page that does not show its order: as learned)."""
        self.pages_fetched += 1
        page = [c for c in self.client.comments(self.user_db_id, limit=self.limit, before_id=before) if c.text]
        if self.flip_unreadable and not order_readable(page):
            page.reverse()
        return page

    def latest(self) -> list[Comment]:
        """One page: the newest ``limit`` comments, oldest first."""
        return self._page(None)

    def fetch(self) -> list[Comment]:
        """Every comment newer than the cursor, oldest first (bounded by ``max_pages``)."""
        pages: list[list[Comment]] = []
        before: str | None = None
        flipped = False
        for _ in range(self.max_pages):
            page = self._page(before)
            if pages and before is not None:
                page = [c for c in page if c.id != before]  # a server whose beforeId is inclusive
                read = {c.id for c in pages[0]}
                if any(c.id in read for c in page):
                    if flipped or order_readable(pages[0]):
                        log.warning("chat catch-up: stream/comments?beforeId=%s brought back messages of the "
                                    "page before it; stopping this catch-up here", before)
                        break
                    # ``before`` was the newest of that page, not the oldest: read such pages the other way
                    self.flip_unreadable, flipped = not self.flip_unreadable, True
                    log.info("chat catch-up: pages whose messages share one second are read the other way "
                             "round from now on (beforeId=%s was not the oldest)", before)
                    pages[0].reverse()
                    before = pages[0][0].id
                    continue
            if not page:
                break
            pages.insert(0, page)
            if any(self.known(c) for c in page):
                break
            before = page[0].id  # the oldest of this page
        else:
            self.overflows += 1
            log.warning("chat catch-up: more than %d pages of %d since the last known message; "
                        "older ones are not read (chat.catch_up_pages)", self.max_pages, self.limit)
        seen: set[str] = set()
        out = []
        for page in pages:
            for comment in page:
                if comment.id not in seen:
                    seen.add(comment.id)
                    out.append(comment)
        return out


# ----- Socket.IO -------------------------------------------------------------------------------------

def _follow_comment(data: dict[str, Any]) -> Comment | None:
    follower = str(data.get("follower_id") or data.get("user_id") or "")
    name = data.get("follower_username") or data.get("username")
    if not follower and not name:
        return None
    when = str(data.get("timestamp") or "")
    return Comment(id=f"follow:{follower or name}:{when}", text="followed the stream",
                   username=clean_name(name), user_id=follower, kind="follow", raw=data)


def _tip_comment(data: dict[str, Any]) -> Comment | None:
    """``tip_received`` (live_ room): the same tip as the ``message`` event of type tip, which
    comes with a time and the tip's own text and replaces this copy when both arrive."""
    if not data.get("chat_event_id"):
        return None  # nothing to tell it from the message event by: that one covers the tip
    try:
        return normalize_comment({**data, "type": "tip"})
    except RetakeProtocolError:
        return None


ROOM_PART = re.compile(r"[A-Za-z0-9_-]{1,100}")  # a session id or token address taken from a payload
WARNING_EVENTS = ("warning", "shutdown_warning")  # a dedicated event, should the platform send one


def _newtrade(data: dict[str, Any]) -> dict[str, Any]:
    """``newtrade``'s documented fields, sanitised."""
    usd = data.get("usdAmount")
    return {"address": clean_text(str(data.get("address") or ""), 100),
            "action": clean_text(str(data.get("action") or ""), 10),
            "usd": float(usd) if isinstance(usd, (int, float)) and not isinstance(usd, bool) else None,
            "ticker": clean_text(str(data.get("tokenTicker") or ""), 20)}


class SocketSource:
    """The Socket.IO client, as section 7 of the reference has it.

    Rooms are joined with ``joinRoom {roomId}`` and no acknowledgement is awaited (none is
    documented): ``joined`` is set once the connection is up and the joins are sent; ``confirmed``
    once an event from a room arrived on that connection (or an older platform's ``joinedRoom``).
    The rooms: ``{userDbId}`` (``message``: chat, tips, trades — and platform notices),
    ``live_{userDbId}`` (``tip_received``, ``user_followed``, ``session_started``),
    ``{userDbId}/{session_id}`` once a payload names the session (``pinned``), and
    ``trades_{tokenAddress}`` once the token address is known (``newtrade``). ``stop`` leaves every
    room (``leaveRoom``) before it disconnects. Every (re)connection reports a gap, which triggers
    a catch-up poll. Nothing secret is sent: the rooms are public.
    """

    def __init__(self, url: str, user_db_id: str, *, on_comment: Callable[[Comment], object],
                 on_gap: Callable[[], None], on_event: Callable[[str, dict[str, Any]], None] = lambda k, d: None,
                 client_factory: Callable[..., Any] | None = None) -> None:
        import socketio
        self.url, self.user_db_id = url, user_db_id
        self.on_comment, self.on_gap, self.on_event = on_comment, on_gap, on_event
        factory = client_factory or socketio.Client
        self.sio = factory(reconnection=True, reconnection_attempts=0, reconnection_delay=0.5,
                           reconnection_delay_max=5, randomization_factor=0.5, logger=False,
                           engineio_logger=False)
        self.joined = threading.Event()      # connected, and the joinRoom emits sent
        self.confirmed = threading.Event()   # a room's event arrived on this connection
        self.connects = 0
        self.received = 0
        self._lock = threading.Lock()
        self._wanted: dict[str, None] = dict.fromkeys((user_db_id, f"live_{user_db_id}"))  # ordered set
        self._in: set[str] = set()           # joins sent on the current connection
        self._session_room = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._register()

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms this client is in (or joins at the next connection)."""
        with self._lock:
            return tuple(self._wanted)

    def _register(self) -> None:
        sio = self.sio
        sio.on("connect", self._connected)
        sio.on("disconnect", self._disconnected)
        sio.on("message", self._message)
        sio.on("tip_received", self._tip)
        sio.on("user_followed", self._follow)
        sio.on("session_started", self._session_started)
        sio.on("pinned", self._pinned)
        sio.on("newtrade", self._newtrade)
        sio.on("rawtrade", lambda data=None: self._traffic())  # the global feed: not joined, not used
        sio.on("joinedRoom", lambda data=None: self._traffic())  # an older platform's confirmation
        for name in WARNING_EVENTS:
            sio.on(name, lambda data=None, name=name: self._warning_event(name, data))

    # --- rooms ----------------------------------------------------------------------------------

    def _send(self, event: str, room: str) -> bool:
        try:
            self.sio.emit(event, {"roomId": room})
        except Exception as exc:  # not connected (any more): the next connection joins again
            log.debug("Socket.IO: %s %s not sent (%s)", event, room, type(exc).__name__)
            return False
        return True

    def _connected(self) -> None:
        with self._lock:
            self._in.clear()
            rooms = list(self._wanted)
        self.confirmed.clear()
        sent = [room for room in rooms if self._send("joinRoom", room)]
        with self._lock:
            self._in.update(sent)
        self.connects += 1
        self.joined.set()
        log.info("Socket.IO: joined %s (no acknowledgement: confirmed by the first event)", ", ".join(sent))
        self.on_gap()  # whatever was said while we were not in the room: the catch-up poll reads it

    def _want(self, room: str) -> None:
        with self._lock:
            if room in self._wanted:
                return
            self._wanted[room] = None
            live = self.joined.is_set()
        if live and self._send("joinRoom", room):
            with self._lock:
                self._in.add(room)
            log.info("Socket.IO: joined %s", room)

    def _unwant(self, room: str) -> None:
        with self._lock:
            self._wanted.pop(room, None)
            was_in = room in self._in
            self._in.discard(room)
        if was_in:
            self._send("leaveRoom", room)

    def watch_token(self, address: str | None) -> None:
        """Join ``trades_{tokenAddress}`` once the token address is known."""
        if address and ROOM_PART.fullmatch(address):
            self._want(f"trades_{address}")

    def _learn_session(self, session_id: Any) -> None:
        """A payload named the current session: join ``{userDbId}/{session_id}`` (``pinned``)."""
        if not isinstance(session_id, str) or not ROOM_PART.fullmatch(session_id):
            return
        room = f"{self.user_db_id}/{session_id}"
        with self._lock:
            old, self._session_room = self._session_room, room
        if old != room:
            if old:
                self._unwant(old)
            self._want(room)

    def _disconnected(self, *args: Any) -> None:
        self.joined.clear()
        self.confirmed.clear()
        with self._lock:
            self._in.clear()
        if not self._stop.is_set():
            log.info("Socket.IO: disconnected; polling covers until it is back")

    # --- events ---------------------------------------------------------------------------------

    def _traffic(self) -> None:
        if not self.confirmed.is_set():
            self.confirmed.set()
            log.info("Socket.IO: the rooms deliver (real-time chat)")

    def _hand_on(self, comment: Comment | None) -> None:
        if comment is not None:
            self.received += 1
            self.on_comment(comment)

    def _message(self, data: Any = None) -> None:
        """``message`` in ``{userDbId}``: every type goes on (the chat loop tells chat from the rest)."""
        self._traffic()
        if not isinstance(data, dict):
            return
        if data.get("streamer_id") and str(data["streamer_id"]) != self.user_db_id:
            return
        self._learn_session(data.get("session_id"))
        try:
            comment = normalize_comment(data)
        except RetakeProtocolError as exc:
            log.info("Socket.IO message ignored: %s", exc.message)
            return
        self._hand_on(comment)

    def _tip(self, data: Any = None) -> None:
        self._traffic()
        self._hand_on(_tip_comment(data) if isinstance(data, dict) else None)

    def _follow(self, data: Any = None) -> None:
        self._traffic()
        self._hand_on(_follow_comment(data) if isinstance(data, dict) else None)

    def _session_started(self, data: Any = None) -> None:
        self._traffic()
        data = data if isinstance(data, dict) else {}
        self._learn_session(data.get("session_id"))
        self.on_event("session_started", {"session_id": clean_text(str(data.get("session_id") or ""), 100),
                                          "title": clean_text(str(data.get("title") or ""), 200)})

    def _pinned(self, data: Any = None) -> None:
        self._traffic()
        if not isinstance(data, dict):
            return
        message = data.get("message") if isinstance(data.get("message"), dict) else data
        try:
            comment = normalize_comment(message)
        except RetakeProtocolError:
            return
        self.on_event("pinned", {"pinned": data.get("pinned") is not False, "id": comment.id,
                                 "name": comment.username, "text": comment.text})

    def _newtrade(self, data: Any = None) -> None:
        self._traffic()
        if isinstance(data, dict):
            self.on_event("newtrade", _newtrade(data))

    def _warning_event(self, name: str, data: Any = None) -> None:
        """A dedicated warning event: a platform notice like a ``message`` of type ``warning``."""
        self._traffic()
        data = data if isinstance(data, dict) else {"text": str(data or "")}
        try:
            comment = normalize_comment({**data, "type": "warning"})
        except RetakeProtocolError:
            comment = Comment(id=f"{name}:{time.time():.3f}", text=f"the platform sent {name} without text",
                              username="retake.tv", kind="warning")
        self._hand_on(comment)

    # --- running ----------------------------------------------------------------------------------

    def start(self) -> SocketSource:
        self._thread = threading.Thread(target=self._run, name="chat-socket", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.sio.connect(self.url, transports=["websocket"], socketio_path="socket.io", wait_timeout=5)
                delay = 1.0
                self.sio.wait()  # until we disconnect (the library reconnects by itself meanwhile)
            except Exception as exc:
                if not self._stop.is_set():
                    log.info("Socket.IO: cannot connect to %s (%s); retrying in %.0f s, polling covers",
                             self.url, type(exc).__name__, delay)
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)

    def _flush(self, timeout: float) -> None:
        """Wait (bounded) until what was emitted has been written: python-socketio's disconnect
        closes the websocket at once, and packets still queued are lost (python-socketio issues
        #888, #1202; the maintainer's advice, an acknowledgement, is not there to wait for)."""
        queue = getattr(getattr(self.sio, "eio", None), "queue", None)
        deadline = time.monotonic() + timeout
        while getattr(queue, "unfinished_tasks", 0) and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        """Leave every room (``leaveRoom``), then disconnect."""
        self._stop.set()
        with self._lock:
            rooms = [room for room in self._wanted if room in self._in]
            self._in.clear()
        for room in rooms:
            self._send("leaveRoom", room)
        self._flush(1.0)
        try:
            self.sio.disconnect()
        except Exception as exc:  # a socket that never connected, or one already gone
            log.debug("socket.io disconnect: %s", exc)
        if self._thread is not None:
            self._thread.join(5)
