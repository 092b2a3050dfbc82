"""What must survive a crash or a container restart, kept in the state folder.

``state.json`` holds the stream count, the times of every ``stream/start`` (the restart budget,
:mod:`appliance.live.budget`), the chat cursor (the ids already seen and the newest timestamp)
and the last stream's final stats. It is written atomically after each change that matters, so
a restart answers no chat message twice, re-registers nothing and starts no extra stream.

A ``state.json`` that cannot be read or does not have the expected shape (not an object, a
field of the wrong type) is kept aside as ``state.json.corrupt`` and the appliance starts
fresh: a broken file must never turn into a crash loop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .files import StateLayout, keep_corrupt, write_json

log = logging.getLogger("appliance.core.store")
MAX_SEEN_IDS = 1000


@dataclass
class PersistentState:
    stream_count: int = 0
    stream_starts: list[float] = field(default_factory=list)  # wall-clock times of every stream/start
    seen_comment_ids: list[str] = field(default_factory=list)
    newest_comment_ts: float | None = None  # epoch seconds of the newest comment handled
    chat_baselined: bool = False
    messages_in: int = 0
    messages_out: int = 0
    last_stream: dict[str, Any] = field(default_factory=dict)
    last_error: str = ""
    hold_notified: str = ""  # the hold (waiting state) the operator was told about, told once
    direction: dict[str, Any] = field(default_factory=dict)  # the builder's last direction: text, source, time
    milestones: dict[str, float] = field(default_factory=dict)  # records told once: viewers, market cap step
    last_heartbeat: float = 0.0  # wall-clock time of the last heartbeat while not live


_NUMBER = (int, float)
# the JSON type each field must have (bool is an int to Python: checked apart); add new fields here
_TYPES: dict[str, tuple[type, ...]] = {
    "stream_count": (int,), "stream_starts": (list,), "seen_comment_ids": (list,),
    "newest_comment_ts": (*_NUMBER, type(None)), "chat_baselined": (bool,), "messages_in": (int,),
    "messages_out": (int,), "last_stream": (dict,), "last_error": (str,), "hold_notified": (str,),
    "direction": (dict,), "milestones": (dict,), "last_heartbeat": _NUMBER,
}
_ITEM_TYPES: dict[str, tuple[type, ...]] = {"stream_starts": _NUMBER, "seen_comment_ids": (str,)}
LEGACY = {"restart_times": "stream_starts"}  # older names of the same facts


def parse_state(raw: Any) -> PersistentState:
    """``state.json``'s content as :class:`PersistentState`; ValueError naming the first bad field."""
    if not isinstance(raw, dict):
        raise ValueError(f"the top level is a JSON {type(raw).__name__}, not an object")
    for old, new in LEGACY.items():
        if old in raw and new not in raw:
            raw[new] = raw[old]
    known: dict[str, Any] = {}
    for key in PersistentState.__dataclass_fields__:
        if key not in raw:
            continue
        value = raw[key]
        kinds = _TYPES.get(key)  # a field added without a type here is loaded as it is
        if kinds is None:
            known[key] = value
            continue
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ValueError(f"{key} is a JSON {type(value).__name__}")
        items = _ITEM_TYPES.get(key)
        if items and isinstance(value, list) and any(isinstance(v, bool) or not isinstance(v, items) for v in value):
            raise ValueError(f"{key} holds an item of the wrong type")
        known[key] = value
    return PersistentState(**known)


class StateStore:
    """Thread-safe access to :class:`PersistentState` with atomic saves."""

    def __init__(self, state_dir: Path) -> None:
        self.path = StateLayout(Path(state_dir)).state_json
        self._lock = threading.RLock()
        self.lock = self._lock  # for read-modify-write sequences outside this class
        self.data = self._load()
        self._seen = deque(self.data.seen_comment_ids, maxlen=MAX_SEEN_IDS)
        self._seen_set = set(self._seen)

    def _load(self) -> PersistentState:
        try:
            return parse_state(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return PersistentState()
        except (OSError, ValueError, RecursionError) as exc:
            kept = keep_corrupt(self.path)
            log.warning("state file %s is corrupt (%s); kept as %s, starting fresh", self.path,
                        str(exc)[:200], kept)
            return PersistentState()

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
