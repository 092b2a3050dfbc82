"""What must survive a crash or a container restart, kept in the state folder.

``state.json`` holds the stream count, restart times, chat cursor (the ids already seen and
the newest timestamp) and the last stream's final stats. It is written atomically after each
change that matters, so a restart answers no chat message twice and re-registers nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .files import StateLayout, write_json

log = logging.getLogger("appliance.state")
MAX_SEEN_IDS = 1000


@dataclass
class PersistentState:
    stream_count: int = 0
    restart_times: list[float] = field(default_factory=list)  # wall-clock times of recoveries
    seen_comment_ids: list[str] = field(default_factory=list)
    newest_comment_ts: float | None = None  # epoch seconds of the newest comment handled
    chat_baselined: bool = False
    messages_in: int = 0
    messages_out: int = 0
    last_stream: dict[str, Any] = field(default_factory=dict)
    last_error: str = ""


class StateStore:
    """Thread-safe access to :class:`PersistentState` with atomic saves."""

    def __init__(self, state_dir: Path) -> None:
        self.path = StateLayout(Path(state_dir)).state_json
        self._lock = threading.RLock()
        self.data = self._load()
        self._seen = deque(self.data.seen_comment_ids, maxlen=MAX_SEEN_IDS)
        self._seen_set = set(self._seen)

    def _load(self) -> PersistentState:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return PersistentState()
        except (OSError, ValueError) as exc:
            broken = self.path.with_suffix(".broken")
            log.warning("state file %s unreadable (%s); kept as %s, starting fresh", self.path, exc, broken)
            os.replace(self.path, broken)
            return PersistentState()
        known = {k: v for k, v in raw.items() if k in PersistentState.__dataclass_fields__}
        return PersistentState(**known)

    def save(self) -> None:
        with self._lock:
            self.data.seen_comment_ids = list(self._seen)
            write_json(self.path, asdict(self.data))

    def seen(self, comment_id: str) -> bool:
        with self._lock:
            return comment_id in self._seen_set

    def mark_seen(self, comment_id: str, ts: float | None) -> None:
        with self._lock:
            if comment_id in self._seen_set:
                return
            if len(self._seen) == self._seen.maxlen:
                self._seen_set.discard(self._seen[0])
            self._seen.append(comment_id)
            self._seen_set.add(comment_id)
            if ts is not None and (self.data.newest_comment_ts is None or ts > self.data.newest_comment_ts):
                self.data.newest_comment_ts = ts

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self.data, key, value)
            self.save()
