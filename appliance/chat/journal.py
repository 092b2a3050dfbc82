"""The chat journal: every comment read and every message sent, so a crash repeats none and loses none.

Inbox (one row per comment id, whichever path brought it):

    new ──(a reply is about to go out)──> replying ──(sent)──> answered
     └──(rate-limited, stale, refused, no reply)──> unanswered
    own / history / blocked: read, never to be answered

Outbox (one row per message we send): ``pending`` is written and committed *before* the HTTP
call, ``sent`` (with the platform's message id) right after it. A controller killed between the
two leaves a ``pending`` row; on restart :meth:`Journal.match_own` sees our own message come back
in the caught-up history and marks it sent, and only a row that never reached the platform is
sent again. A comment read but not yet answered is still ``new`` and is answered after the
restart; a comment never read is found by the catch-up poll (it is not in the inbox).

The inbox is also the chat cursor: the catch-up pages back (``beforeId``) until it meets a
message the inbox knows. Rows live in :class:`~.memory.ChatDb` (SQLite, WAL), bounded by
``chat.memory.journal_rows``.

One message may come by both paths under two ids (Socket.IO's ``chat_event_id``, the page's
``_id``): :meth:`Journal.recognize` finds its twin (:mod:`.twins`) and records the second id as a
``twin`` row pointing at the first, so it is known from then on, across restarts too.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ..retake.normalize import Comment
from .memory import ChatDb
from .twins import Trace, distance, family, fingerprint, twins

log = logging.getLogger("appliance.chat")

OPEN_STATES = ("new", "replying")
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Outgoing:
    """One outbox row."""

    n: int
    created: float
    text: str
    to_ids: tuple[str, ...]
    routes: tuple[str, ...]
    brain: str
    state: str
    attempts: int
    message_id: str | None


def _row_trace(row: sqlite3.Row, fp: str) -> Trace:
    """An inbox row (selected by its text's fingerprint ``fp``) as a :class:`~.twins.Trace`."""
    try:
        body = json.loads(row["body"] or "{}")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    return Trace(row["id"], family(row["source"]), fp, row["ts"], row["seq"], row["received"],
                 str(body.get("wallet_address") or ""), str(body.get("user_id") or ""), str(body.get("fid") or ""))


def _outgoing(r: sqlite3.Row) -> Outgoing:
    return Outgoing(n=r["n"], created=r["created"], text=r["text"], to_ids=tuple(json.loads(r["to_ids"])),
                    routes=tuple(json.loads(r["routes"])), brain=r["brain"], state=r["state"],
                    attempts=r["attempts"], message_id=r["message_id"])


class Journal:
    """The inbox/outbox tables of :class:`ChatDb`."""

    def __init__(self, db: ChatDb, *, max_rows: int = 5000) -> None:
        self.db = db
        self.max_rows = max_rows
        self._writes = 0

    # --- cursor ------------------------------------------------------------------------------

    @property
    def baselined(self) -> bool:
        """True once a first look at the chat has been taken (what came before is history)."""
        return self.db.meta("baselined") is not None

    def baseline(self, comments: Iterable[Comment], source: str = "baseline") -> int:
        """Record ``comments`` as history (never answered) and mark the journal baselined."""
        count = 0
        with self.db.tx() as conn:
            for c in comments:
                count += self._insert(conn, c, state="history", source=source)
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('baselined', ?)", (repr(self.db.clock()),))
        return count

    def import_legacy(self, ids: Iterable[str]) -> None:
        """Adopt the ids ``state.json`` remembered before the journal existed."""
        self.baseline([Comment(id=i, text="-", username="-") for i in ids], source="legacy")

    def known(self, comment_id: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM inbox WHERE id = ?", (comment_id,)))

    def canonical(self, comment_id: str) -> str:
        """The id the inbox answers a message under (a twin's id leads to the first one seen)."""
        rows = self.db.query("SELECT twin_of FROM inbox WHERE id = ?", (comment_id,))
        return rows[0]["twin_of"] if rows and rows[0]["twin_of"] else comment_id

    def recognize(self, comment: Comment, source: str, *, record: bool = True) -> str | None:
        """The inbox id ``comment`` already has — its own, the same ``chat_event_id``'s, or its twin's
        from the other path (:mod:`.twins`) — or None when it is new. With ``record``, a twin's id is
        written as a ``twin`` row, so it is known by id from then on."""
        return self.match(comment, source, record=record)[0]

    def match(self, comment: Comment, source: str, *, record: bool = True) -> tuple[str | None, bool]:
        """:meth:`recognize`, and whether the match is certain: by id or ``chat_event_id``, or the
        only twin there was (two viewers saying "gm" in one second are not certain)."""
        trace = Trace.of(comment, source, self.db.clock())
        rows = self.db.query("SELECT id, ts, twin_of FROM inbox WHERE id = ?", (comment.id,))
        if rows:
            if record and rows[0]["ts"] is None and trace.ts is not None:
                with self.db.tx() as conn:  # a first copy without a time (tip_received): this one's text and time
                    conn.execute("UPDATE inbox SET ts = ?, fp = ? WHERE id = ?", (trace.ts, trace.fp, comment.id))
            return rows[0]["twin_of"] or rows[0]["id"], True
        match, certain = None, True
        if trace.seq is not None:
            rows = self.db.query("SELECT id, twin_of FROM inbox WHERE seq = ? LIMIT 1", (trace.seq,))
            match = (rows[0]["twin_of"] or rows[0]["id"]) if rows else None
        if match is None:
            # unpaired comments with the same text: nearest in time first (one to one)
            rows = self.db.query(
                "SELECT i.id, i.source, i.ts, i.seq, i.received, i.body, EXISTS (SELECT 1 FROM inbox t "
                "WHERE t.twin_of = i.id) AS paired FROM inbox i WHERE i.fp = ? AND i.twin_of IS NULL "
                "ORDER BY i.received DESC LIMIT 50", (trace.fp,))
            alike = [(t, bool(r["paired"])) for r, t in ((r, _row_trace(r, trace.fp)) for r in rows) if twins(trace, t)]
            found = [t for t, paired in alike if not paired]
            match = min(found, key=lambda t: distance(trace, t)).id if found else None
            certain = len(alike) == 1  # paired or not: one candidate, not the last one left
        if match is not None and record:
            with self.db.tx() as conn:
                self._insert(conn, comment, state="twin", source=source, twin_of=match)
            log.debug("chat: %s from %s is %s seen by the other path", comment.id, source, match)
        return match, certain

    def is_ours(self, message_id: str) -> bool:
        return bool(message_id) and bool(self.db.query(
            "SELECT 1 FROM outbox WHERE message_id = ?", (message_id,)))

    # --- inbox -------------------------------------------------------------------------------

    def receive(self, comment: Comment, *, state: str, source: str, viewer: str = "") -> bool:
        """Record a comment; False when its id was already there (nothing changes then)."""
        with self.db.tx() as conn:
            inserted = self._insert(conn, comment, state=state, source=source, viewer=viewer)
        self._count_write()
        return bool(inserted)

    def _insert(self, conn: sqlite3.Connection, comment: Comment, *, state: str, source: str, viewer: str = "",
                twin_of: str | None = None) -> int:
        ts = comment.timestamp.timestamp() if isinstance(comment.timestamp, datetime) else None
        return conn.execute(
            "INSERT OR IGNORE INTO inbox(id, received, state, source, viewer, body, fp, ts, seq, twin_of) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (comment.id, self.db.clock(), state, source, viewer, comment.model_dump_json(),
             fingerprint(comment.text), ts, comment.seq, twin_of)).rowcount

    def finish(self, ids: Iterable[str], state: str = "unanswered") -> None:
        with self.db.tx() as conn:
            conn.executemany("UPDATE inbox SET state = ? WHERE id = ? AND state IN ('new', 'replying')",
                             [(state, i) for i in ids])

    def reopen(self, ids: Iterable[str]) -> None:
        """Comments whose reply was refused by the outgoing filter get another chance."""
        with self.db.tx() as conn:
            conn.executemany("UPDATE inbox SET state = 'new' WHERE id = ? AND state = 'unanswered'",
                             [(i,) for i in ids])

    def viewer_of(self, comment_id: str) -> str:
        """The viewer key a read comment was recorded under ('' for none)."""
        rows = self.db.query("SELECT viewer FROM inbox WHERE id = ?", (comment_id,))
        return str(rows[0]["viewer"] or "") if rows else ""

    def state_of(self, comment_id: str) -> str | None:
        rows = self.db.query("SELECT state FROM inbox WHERE id = ?", (comment_id,))
        return rows[0]["state"] if rows else None

    def comment(self, comment_id: str) -> Comment | None:
        rows = self.db.query("SELECT body FROM inbox WHERE id = ? AND body != '{}'", (comment_id,))
        return Comment.model_validate_json(rows[0]["body"]) if rows else None

    def open_comments(self) -> list[tuple[Comment, float]]:
        """Comments read but not answered yet (``new``), oldest first, with when they were read."""
        rows = self.db.query("SELECT body, received FROM inbox WHERE state = 'new' ORDER BY received, rowid")
        return [(Comment.model_validate_json(r["body"]), r["received"]) for r in rows]

    # --- outbox ------------------------------------------------------------------------------

    def begin(self, text: str, *, to_ids: Iterable[str] = (), routes: Iterable[str] = ("chat",),
              brain: str = "") -> int:
        """Commit the intent to send ``text`` (answering ``to_ids``) before sending it."""
        ids = list(to_ids)
        with self.db.tx() as conn:
            n = conn.execute("INSERT INTO outbox(created, text, to_ids, routes, brain, state) "
                             "VALUES (?, ?, ?, ?, ?, 'pending')",
                             (self.db.clock(), text, json.dumps(ids), json.dumps(list(routes)), brain)).lastrowid
            conn.executemany("UPDATE inbox SET state = 'replying', reply = ? WHERE id = ? AND state = 'new'",
                             [(n, i) for i in ids])
        self._count_write()
        return int(n or 0)

    def sent(self, n: int, message_id: str | None) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE outbox SET state = 'sent', message_id = ?, sent = ? WHERE n = ?",
                         (message_id, self.db.clock(), n))
            conn.execute("UPDATE inbox SET state = 'answered' WHERE reply = ? AND state = 'replying'", (n,))

    def failed(self, n: int, *, final: bool) -> None:
        """A send that did not go through: tried again later, or given up (``final``)."""
        with self.db.tx() as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, state = ? WHERE n = ?",
                         ("failed" if final else "pending", n))
            if final:
                conn.execute("UPDATE inbox SET state = 'unanswered' WHERE reply = ? AND state = 'replying'", (n,))

    def give_up(self, n: int, state: str = "expired") -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE outbox SET state = ? WHERE n = ?", (state, n))
            conn.execute("UPDATE inbox SET state = 'unanswered' WHERE reply = ? AND state = 'replying'", (n,))

    def last_n(self) -> int:
        return int(self.db.query("SELECT COALESCE(MAX(n), 0) AS n FROM outbox")[0]["n"])

    def pending(self) -> list[Outgoing]:
        return [_outgoing(r) for r in self.db.query("SELECT * FROM outbox WHERE state = 'pending' ORDER BY n")]

    def outgoing(self, n: int) -> Outgoing | None:
        rows = self.db.query("SELECT * FROM outbox WHERE n = ?", (n,))
        return _outgoing(rows[0]) if rows else None

    def match_own(self, comment: Comment) -> bool:
        """Our own message came back in the chat: if a ``pending`` row has its text (and is not
        newer than it), that row did reach the platform — mark it sent. True when one matched."""
        when = comment.timestamp.timestamp() if isinstance(comment.timestamp, datetime) else None
        rows = self.db.query("SELECT n, created FROM outbox WHERE state = 'pending' AND text = ? ORDER BY n",
                             (comment.text,))
        for row in rows:
            if when is None or row["created"] <= when + 60.0:  # platform and our clocks may differ a little
                self.sent(row["n"], comment.id)
                log.info("message %d was sent before the restart (seen in the chat as %s)", row["n"], comment.id)
                return True
        return False

    def recent_texts(self, limit: int = 50) -> list[str]:
        rows = self.db.query("SELECT text FROM outbox WHERE state IN ('sent', 'pending') ORDER BY n DESC LIMIT ?",
                             (limit,))
        return [r["text"] for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self.db.query("SELECT state, COUNT(*) AS n FROM inbox GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    # --- bounds ------------------------------------------------------------------------------

    def _count_write(self) -> None:
        self._writes += 1
        if self._writes % 200 == 0:
            self.prune()

    def prune(self) -> None:
        """Keep the newest ``max_rows`` closed inbox rows and outbox rows (open ones always)."""
        with self.db.tx() as conn:
            conn.execute("DELETE FROM inbox WHERE state NOT IN ('new', 'replying') AND rowid NOT IN "
                         "(SELECT rowid FROM inbox ORDER BY received DESC, rowid DESC LIMIT ?)", (self.max_rows,))
            conn.execute("DELETE FROM outbox WHERE state != 'pending' AND n NOT IN "
                         "(SELECT n FROM outbox ORDER BY n DESC LIMIT ?)", (self.max_rows,))
