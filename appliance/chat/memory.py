"""Viewer memory: who watched, when, what they said and gave — in SQLite on the state volume.

One file (``StateLayout.memory_db``, mode 600, WAL) holds two things that must agree after a
crash, so they commit together: the viewers (:class:`ViewerMemory`, here) and the chat journal
(:mod:`.journal`: what was read, what was answered). WAL with ``synchronous=NORMAL``: a committed
transaction survives the process being killed (SIGKILL); a power cut may lose the last few,
which the journal's recovery tolerates (it checks the platform's history before re-sending).

Everything is bounded: at most ``chat.memory.max_viewers`` viewers (least recently seen pruned
first), ``max_notes_per_viewer`` notes each, ``journal_rows`` read comments.

A viewer's key is the wallet when the platform gives one, else the platform user id, else the
name. The documented payloads do not share one: a page's comment names the author's wallet (and
fid), a Socket.IO ``message`` the sender's user id. So keys are linked (``aliases``) whenever one
payload carries two of them, or the journal recognises one message seen by both paths
(:meth:`ViewerMemory.link`): one person stays one row whichever path their message took.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.files import ensure_private_dir
from ..core.sanitize import clean_text
from ..retake.normalize import Comment
from .settings import MemoryConfig

log = logging.getLogger("appliance.memory")

SCHEMA = """
CREATE TABLE IF NOT EXISTS viewers (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, user_id TEXT NOT NULL DEFAULT '',
    wallet TEXT NOT NULL DEFAULT '', first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0, tips INTEGER NOT NULL DEFAULT 0,
    tips_sol REAL NOT NULL DEFAULT 0, trades INTEGER NOT NULL DEFAULT 0,
    trades_usd REAL NOT NULL DEFAULT 0, follows INTEGER NOT NULL DEFAULT 0,
    sessions INTEGER NOT NULL DEFAULT 0, last_session TEXT NOT NULL DEFAULT '',
    last_text TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS viewers_last_seen ON viewers(last_seen);
CREATE TABLE IF NOT EXISTS notes (viewer TEXT NOT NULL, at REAL NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notes_viewer ON notes(viewer, at);
CREATE TABLE IF NOT EXISTS said (text TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS aliases (alias TEXT PRIMARY KEY, key TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (
    id TEXT PRIMARY KEY, received REAL NOT NULL, state TEXT NOT NULL, source TEXT NOT NULL,
    viewer TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '{}', reply INTEGER,
    fp TEXT, ts REAL, seq INTEGER, twin_of TEXT);
CREATE INDEX IF NOT EXISTS inbox_state ON inbox(state, received);
CREATE INDEX IF NOT EXISTS inbox_received ON inbox(received);
CREATE TABLE IF NOT EXISTS outbox (
    n INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, text TEXT NOT NULL,
    to_ids TEXT NOT NULL DEFAULT '[]', routes TEXT NOT NULL DEFAULT '["chat"]',
    brain TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    message_id TEXT, sent REAL);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state);
CREATE INDEX IF NOT EXISTS outbox_message ON outbox(message_id);
"""
# columns added since the first schema (added to an older file by ChatDb) and their indexes
ADDED_COLUMNS = {"inbox": (("fp", "TEXT"), ("ts", "REAL"), ("seq", "INTEGER"), ("twin_of", "TEXT")),
                 "said": (("phrase", "TEXT NOT NULL DEFAULT ''"), ("stream", "TEXT NOT NULL DEFAULT ''"))}
ADDED_INDEXES = """
CREATE INDEX IF NOT EXISTS inbox_fp ON inbox(fp);
CREATE INDEX IF NOT EXISTS inbox_seq ON inbox(seq);
CREATE INDEX IF NOT EXISTS inbox_twin ON inbox(twin_of);
CREATE INDEX IF NOT EXISTS said_phrase ON said(phrase, at);
CREATE INDEX IF NOT EXISTS said_at ON said(at);
"""


class ChatDb:
    """The SQLite file: one connection shared by the chat threads, one re-entrant lock, and
    :meth:`tx` for a transaction (nested calls join the outer one)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        ensure_private_dir(self.path.parent)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # WAL/SHM inherit the mode
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                     timeout=10.0)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                have = {row["name"] for row in self._conn.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns:
                    if name not in have:
                        self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            self._conn.executescript(ADDED_INDEXES)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT; ROLLBACK on an exception)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as conn:
            conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def line_key(line: str) -> str:
    """A line as compared for "said before": case, character forms, punctuation and spacing folded."""
    return re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", line).casefold()).strip()[:300]


def viewer_key(comment: Comment) -> str:
    """One person, one key: wallet, else platform user id, else the name (see :meth:`ViewerMemory.key`)."""
    if comment.wallet_address:
        return f"w:{comment.wallet_address}"
    if comment.user_id:
        return f"u:{comment.user_id}"
    return f"n:{comment.username.casefold()}"


@dataclass(frozen=True)
class Viewer:
    """What memory knows about one viewer (as it was before the message being handled)."""

    key: str
    name: str
    first_seen: float
    last_seen: float
    messages: int = 0
    tips: int = 0
    tips_sol: float = 0.0
    trades: int = 0
    trades_usd: float = 0.0
    follows: int = 0
    sessions: int = 0
    last_text: str = ""
    new: bool = False                # never seen before this message
    first_in_session: bool = False   # first message of this stream (new or returning)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def returning(self) -> bool:
        return not self.new and self.first_in_session

    def facts(self) -> list[str]:
        """Short remembered facts for a callback or a prompt (no raw viewer text but the last line)."""
        out = []
        if self.sessions:
            out.append(f"seen in {self.sessions} earlier stream(s)")
        if self.tips:
            out.append(f"tipped {self.tips_sol:g} SOL in total")
        if self.trades:
            out.append(f"{self.trades} trade(s) of the token")
        if self.last_text:
            out.append(f"last said: {self.last_text}")
        out.extend(f"note: {n}" for n in self.notes)
        return out


def _row_viewer(row: sqlite3.Row, **extra: Any) -> Viewer:
    return Viewer(key=row["key"], name=row["name"], first_seen=row["first_seen"],
                  last_seen=row["last_seen"], messages=row["messages"], tips=row["tips"],
                  tips_sol=row["tips_sol"], trades=row["trades"], trades_usd=row["trades_usd"],
                  follows=row["follows"], sessions=row["sessions"], last_text=row["last_text"], **extra)


class ViewerMemory:
    """Viewers, their counts and notes; a session is one stream (a chat gap longer than
    ``session_gap_s`` starts a new one, so a restart mid-stream greets nobody twice)."""

    def __init__(self, db: ChatDb, cfg: MemoryConfig, *, session_gap_s: float = 1800.0) -> None:
        self.db, self.cfg = db, cfg
        self._writes = 0
        self.session = self._session(session_gap_s)
        self.prune()

    def _session(self, gap_s: float) -> str:
        now = self.db.clock()
        last = float(self.db.meta("last_activity", "0") or 0)
        session = self.db.meta("session")
        if session is None or now - last > gap_s:
            session = f"s{int(now)}"
            self.db.set_meta("session", session)
        self.touch()
        return session

    def touch(self) -> None:
        self.db.set_meta("last_activity", repr(self.db.clock()))

    # --- one person, one key ----------------------------------------------------------------

    def resolve(self, key: str) -> str:
        rows = self.db.query("SELECT key FROM aliases WHERE alias = ?", (key,))
        return rows[0]["key"] if rows else key

    def key(self, comment: Comment) -> str:
        """The viewer's key, whichever identifier this payload carries (wallet and user id: linked)."""
        key = viewer_key(comment)
        if comment.wallet_address and comment.user_id:
            self.link(key, f"u:{comment.user_id}")
        return self.resolve(key)

    def link(self, a: str, b: str) -> None:
        """``a`` and ``b`` are one viewer: the one seen first keeps the row (counts and notes of
        the other are added to it); the other becomes its alias. Names (``n:``) are never linked:
        anyone can take a name."""
        a, b = self.resolve(a), self.resolve(b)
        if a == b or a.startswith("n:") or b.startswith("n:"):
            return
        with self.db.tx() as conn:
            rows = {r["key"]: r for r in conn.execute("SELECT * FROM viewers WHERE key IN (?, ?)", (a, b))}
            keep, gone = (a, b) if b not in rows or (a in rows and rows[a]["first_seen"] <= rows[b]["first_seen"]) \
                else (b, a)
            if gone in rows and keep in rows:
                other = rows[gone]
                conn.execute(
                    "UPDATE viewers SET messages = messages + ?, tips = tips + ?, tips_sol = tips_sol + ?, "
                    "trades = trades + ?, trades_usd = trades_usd + ?, follows = follows + ?, "
                    "first_seen = MIN(first_seen, ?), last_seen = MAX(last_seen, ?) WHERE key = ?",
                    (other["messages"], other["tips"], other["tips_sol"], other["trades"], other["trades_usd"],
                     other["follows"], other["first_seen"], other["last_seen"], keep))
                conn.execute("DELETE FROM viewers WHERE key = ?", (gone,))
            elif gone in rows:
                conn.execute("UPDATE viewers SET key = ? WHERE key = ?", (keep, gone))
            conn.execute("UPDATE notes SET viewer = ? WHERE viewer = ?", (keep, gone))
            conn.execute("UPDATE aliases SET key = ? WHERE key = ?", (keep, gone))
            conn.execute("INSERT INTO aliases(alias, key, at) VALUES (?, ?, ?) ON CONFLICT(alias) DO UPDATE "
                         "SET key = excluded.key, at = excluded.at", (gone, keep, self.db.clock()))

    def get(self, key: str) -> Viewer | None:
        rows = self.db.query("SELECT * FROM viewers WHERE key = ?", (key,))
        return _row_viewer(rows[0], notes=self._notes(key)) if rows else None

    def _notes(self, key: str, limit: int = 3) -> tuple[str, ...]:
        rows = self.db.query("SELECT text FROM notes WHERE viewer = ? ORDER BY at DESC LIMIT ?", (key, limit))
        return tuple(r["text"] for r in rows)

    def observe(self, comment: Comment, *, kind: str | None = None) -> Viewer:
        """Count one message (or tip, trade, follow) and return the viewer as it was before."""
        key, now = self.key(comment), self.db.clock()
        kind = kind or comment.kind
        amount = comment.amount or 0.0
        with self.db.tx() as conn:
            row = conn.execute("SELECT * FROM viewers WHERE key = ?", (key,)).fetchone()
            first_in_session = row is None or row["last_session"] != self.session
            before = (_row_viewer(row, first_in_session=first_in_session, notes=self._notes(key))
                      if row else Viewer(key=key, name=comment.username, first_seen=now, last_seen=now,
                                         new=True, first_in_session=True))
            if row is None:
                conn.execute("INSERT INTO viewers(key, name, user_id, wallet, first_seen, last_seen, "
                             "last_session, sessions) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                             (key, comment.username, comment.user_id, comment.wallet_address, now, now,
                              self.session))
            text = clean_text(comment.text, 80) if kind == "message" else None
            conn.execute(
                "UPDATE viewers SET name = ?, user_id = CASE WHEN ? != '' THEN ? ELSE user_id END, "
                "last_seen = ?, messages = messages + ?, tips = tips + ?, tips_sol = tips_sol + ?, "
                "trades = trades + ?, trades_usd = trades_usd + ?, follows = follows + ?, "
                "sessions = sessions + ?, last_session = ?, last_text = COALESCE(?, last_text) "
                "WHERE key = ?",
                (comment.username, comment.user_id, comment.user_id, now, int(kind == "message"),
                 int(kind == "tip"), amount if kind == "tip" else 0.0, int(kind == "trade"),
                 amount if kind == "trade" else 0.0, int(kind == "follow"),
                 int(row is not None and first_in_session), self.session, text, key))
            conn.execute("INSERT INTO meta(key, value) VALUES ('last_activity', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (repr(now),))
        self._count_write()
        return before

    def note(self, key: str, text: str) -> None:
        """A brain's (or the outside agent's) note about a viewer, used in later callbacks."""
        text = clean_text(text, 200)
        if not text or self.cfg.max_notes_per_viewer == 0:
            return
        with self.db.tx() as conn:
            conn.execute("INSERT INTO notes(viewer, at, text) VALUES (?, ?, ?)", (key, self.db.clock(), text))
            conn.execute("DELETE FROM notes WHERE viewer = ? AND rowid NOT IN (SELECT rowid FROM notes "
                         "WHERE viewer = ? ORDER BY at DESC LIMIT ?)", (key, key, self.cfg.max_notes_per_viewer))

    # --- lines said (proactive): none repeated, not even across streams -------------------------

    def said_before(self, line: str) -> bool:
        """Whether this line (:func:`line_key`: case, punctuation and spacing folded) was said,
        in this stream or an earlier one (the newest ``chat.memory.said_rows`` are remembered)."""
        return bool(self.db.query("SELECT 1 FROM said WHERE text = ?", (line_key(line),)))

    def record_said(self, line: str, *, phrase: str = "") -> None:
        """Remember a line said in this stream; ``phrase`` is what it was made from (a bank
        template), so that phrase can rest in the next streams."""
        with self.db.tx() as conn:
            conn.execute("INSERT INTO said(text, at, phrase, stream) VALUES (?, ?, ?, ?) ON CONFLICT(text) DO UPDATE "
                         "SET at = excluded.at, phrase = excluded.phrase, stream = excluded.stream",
                         (line_key(line), self.db.clock(), phrase, self.session))
        self._count_write()

    def phrases_of_recent_streams(self, streams: int) -> set[str]:
        """The phrases used in the last ``streams`` streams before this one."""
        if streams <= 0:
            return set()
        rows = self.db.query(
            "SELECT DISTINCT phrase FROM said WHERE phrase != '' AND stream IN (SELECT stream FROM said "
            "WHERE stream != ? GROUP BY stream ORDER BY MAX(at) DESC LIMIT ?)", (self.session, streams))
        return {r["phrase"] for r in rows}

    def phrase_last_used(self) -> dict[str, float]:
        """When each phrase was last used (for a rotation: the least recently used first)."""
        rows = self.db.query("SELECT phrase, MAX(at) AS at FROM said WHERE phrase != '' GROUP BY phrase")
        return {r["phrase"]: r["at"] for r in rows}

    def recent_said(self, limit: int = 20) -> list[str]:
        """The newest lines said (folded, see :func:`line_key`), newest first: what a brain that
        writes its own lines is told never to repeat."""
        rows = self.db.query("SELECT text FROM said ORDER BY at DESC LIMIT ?", (max(1, limit),))
        return [r["text"] for r in rows]

    # --- listing and pruning ---------------------------------------------------------------------

    def list(self, limit: int = 50) -> list[Viewer]:
        rows = self.db.query("SELECT * FROM viewers ORDER BY last_seen DESC LIMIT ?", (max(1, limit),))
        return [_row_viewer(r) for r in rows]

    def count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) AS n FROM viewers")[0]["n"])

    def _count_write(self) -> None:
        self._writes += 1
        if self._writes % 500 == 0:
            self.prune()

    def prune(self) -> None:
        """Keep the newest ``max_viewers`` viewers, their notes, the newest ``said_rows`` lines said."""
        with self.db.tx() as conn:
            conn.execute("DELETE FROM viewers WHERE key NOT IN (SELECT key FROM viewers "
                         "ORDER BY last_seen DESC LIMIT ?)", (self.cfg.max_viewers,))
            conn.execute("DELETE FROM notes WHERE viewer NOT IN (SELECT key FROM viewers)")
            conn.execute("DELETE FROM aliases WHERE key NOT IN (SELECT key FROM viewers)")
            conn.execute("DELETE FROM said WHERE rowid NOT IN (SELECT rowid FROM said ORDER BY at DESC LIMIT ?)",
                         (self.cfg.said_rows,))


def list_viewers(path: Path, *, limit: int = 50) -> list[dict[str, Any]]:
    """The remembered viewers, most recently seen first, for ``appliance viewers`` (read-only)."""
    path = Path(path)
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT v.*, (SELECT COUNT(*) FROM notes n WHERE n.viewer = v.key) AS notes "
                            "FROM viewers v ORDER BY last_seen DESC LIMIT ?", (max(1, limit),)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()

    def when(ts: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))

    return [{"name": r["name"], "first_seen": when(r["first_seen"]), "last_seen": when(r["last_seen"]),
             "messages": r["messages"], "tips": r["tips"], "tips_sol": round(r["tips_sol"], 6),
             "trades": r["trades"], "trades_usd": round(r["trades_usd"], 2), "follows": r["follows"],
             "sessions": r["sessions"], "notes": r["notes"]} for r in rows]
