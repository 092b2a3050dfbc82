"""The event bus, watched for what the builder must hear (skill sections 8 and 10). Every
threshold is a ``notify.*`` setting (:class:`~appliance.live.settings.NotifyConfig`):

==================  ======================================================  ==========================
event               when                                                    settings
==================  ======================================================  ==========================
shutdown_warning    the platform warns it will shut the stream down         always; urgent, every
                    (bus ``warning``, published by the chat)                webhook, at once
trouble             a recovery starts                                       at most every 10 min
unusual_activity    a minute of chat far above the recent norm; viewers    chat_surge_factor/_min,
                    falling far below it                                    viewer_drop_fraction/_min,
                                                                            unusual_window_s/_every_s
viewer_peak         a stream's viewers reach a step; more than ever before  viewer_steps,
                                                                            viewer_record_min
large_tip           a tip at least this large                               large_tip_sol
market_cap_step     the token's market cap passes the next step             market_cap_step, _min
trade_burst         many trades in a short time                             trade_burst, trade_burst_s
viewers_low         mid-stream, fewer viewers than this (with the link)     low_viewers*
==================  ======================================================  ==========================

The recent norm is the median minute of the last ``unusual_window_s`` (the current minute
left out), judged only once three minutes of the stream are behind it. Records (the viewer
record, the market-cap step) are kept in ``state.json``: told once, across streams and restarts.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.sanitize import clean_name, clean_text
from ..core.store import StateStore
from .parts import NotifierLike

if TYPE_CHECKING:  # the composed settings, handed in by the composition root
    from ..config import Settings

MINUTE = 60.0
MIN_HISTORY_S = 180.0  # no norm before this much of the stream is behind it
TROUBLE_EVERY_S = 600.0
WARNING_REPEAT_S = 60.0  # the same warning text twice within this is one warning
MAX_SAMPLES = 20_000


class MinuteNorm:
    """Events per minute: the last minute against the median minute of the window before it."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque(maxlen=MAX_SAMPLES)

    def add(self, now: float) -> None:
        self.times.append(now)
        while self.times and self.times[0] < now - self.window_s:
            self.times.popleft()

    def last_minute(self, now: float) -> int:
        return sum(1 for t in self.times if t > now - MINUTE)

    def norm(self, now: float, since: float) -> float | None:
        """The median count of the whole minutes before the last one, from ``since``; None
        until :data:`MIN_HISTORY_S` has passed."""
        start = max(since, now - self.window_s)
        minutes = int((now - MINUTE - start) // MINUTE)
        if now - since < MIN_HISTORY_S or minutes < 2:
            return None
        counts = [0] * minutes
        for t in self.times:
            index = int((now - MINUTE - t) // MINUTE)
            if t <= now - MINUTE and 0 <= index < minutes:
                counts[index] += 1
        return float(statistics.median(counts))


class StreamWatch:
    """Bus events -> the builder's notifications (see the module docstring). Subscribe it to
    the event bus; it never blocks (the notifier delivers in the background)."""

    def __init__(self, notifier: NotifierLike, settings: Settings, *, store: StateStore | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier, self.cfg, self.store, self.clock = notifier, settings.notify, store, clock
        self.url = settings.stream_url()
        self._lock = threading.Lock()
        saved = store.data.milestones if store is not None else {}
        self._records: dict[str, float] = {k: float(v) for k, v in saved.items()
                                           if isinstance(v, int | float) and not isinstance(v, bool)}
        self.live_since: float | None = None
        self._last_low = -1e18
        self._last_trouble = -1e18
        self._last_unusual: dict[str, float] = {}
        self._warnings: dict[str, float] = {}
        self._new_stream(None)

    def _new_stream(self, now: float | None) -> None:
        self.live_since = now
        self.chat = MinuteNorm(self.cfg.unusual_window_s)
        self.viewers: deque[tuple[float, int]] = deque(maxlen=MAX_SAMPLES)
        self.trades: deque[float] = deque(maxlen=MAX_SAMPLES)
        self._steps_told: set[int] = set()
        self._last_burst = -1e18

    def __call__(self, event: Any) -> None:
        kind, data = event.kind, event.data
        with self._lock:
            if kind == "warning":
                self._warning(data)
            elif kind == "state":
                self._state(data)
            elif kind == "tip":
                self._tip(data)
            elif kind == "viewers":
                self._viewers(int(data.get("count") or 0))
            elif kind == "chat":
                self._chat()
            elif kind == "trade":
                self._trade()
            elif kind == "token":
                self._market_cap(data.get("market_cap"))

    # --- each kind ----------------------------------------------------------------------------

    def _warning(self, data: Mapping[str, Any]) -> None:
        """A platform shutdown warning: a crisis — told at once, urgent, on every channel."""
        text = clean_text(data.get("text") or "", 400) or "(no text)"
        now = self.clock()
        if now - self._warnings.get(text, -1e18) < WARNING_REPEAT_S:
            return
        self._warnings = {t: at for t, at in self._warnings.items() if now - at < WARNING_REPEAT_S}
        self._warnings[text] = now
        source = clean_text(data.get("source") or "platform", 40)
        self.notifier.notify("shutdown_warning", f"SHUTDOWN WARNING from retake.tv ({source}): \"{text}\". "
                             f"Treat it as a crisis: check the stream now ({self.url}) and change what it "
                             "shows — low-effort streams get shut down.", urgent=True, source=source, url=self.url)

    def _state(self, data: Mapping[str, Any]) -> None:
        state, now = data.get("state"), self.clock()
        if state == "live" and self.live_since is None:
            self._new_stream(now)
        elif state in ("stopping", "stopped", "failed"):
            self.live_since = None
        if state == "recovering" and now - self._last_trouble > TROUBLE_EVERY_S:
            self._last_trouble = now
            self.notifier.notify("trouble", f"Technical trouble: {clean_text(data.get('detail', ''), 200)}. "
                                 "Recovering with fresh RTMP keys.")

    def _tip(self, data: Mapping[str, Any]) -> None:
        amount = data.get("amount")
        if isinstance(amount, int | float) and amount >= self.cfg.large_tip_sol:
            name = clean_name((data.get("user") or {}).get("name") or "a viewer", 40)
            self.notifier.notify("large_tip", f"{name} tipped {amount:g} SOL on stream.", amount=amount)

    def _chat(self) -> None:
        if self.live_since is None:
            return
        now = self.clock()
        self.chat.add(now)
        if not self.cfg.chat_surge_factor:
            return
        norm = self.chat.norm(now, self.live_since)
        count = self.chat.last_minute(now)
        if norm is None or count < max(self.cfg.chat_surge_min, self.cfg.chat_surge_factor * max(norm, 1.0)):
            return
        self._unusual("chat_surge", f"Unusual activity: {count} chat messages in the last minute, against "
                                    f"{norm:g} a minute recently. Something is happening on stream: {self.url}",
                      messages=count, norm=norm)

    def _viewers(self, count: int) -> None:
        if self.live_since is None:
            return
        now = self.clock()
        self.viewers.append((now, count))
        while self.viewers and self.viewers[0][0] < now - self.cfg.unusual_window_s:
            self.viewers.popleft()
        self._viewer_milestones(count)
        self._viewer_drop(now, count)
        self._low_viewers(now, count)

    def _viewer_milestones(self, count: int) -> None:
        reached = [s for s in self.cfg.viewer_steps if count >= s and s not in self._steps_told]
        record = self._records.get("viewers", 0.0)
        if count > record:
            self._remember("viewers", count)
            if record >= self.cfg.viewer_record_min:
                self._steps_told.update(reached)
                self.notifier.notify("viewer_peak", f"New record: {count} viewers, more than ever before "
                                     f"(the last record was {record:g}). A good moment to share {self.url}",
                                     viewers=count, record=True)
                return
        if reached:
            self._steps_told.update(reached)
            self.notifier.notify("viewer_peak", f"{count} viewers on stream (past {max(reached)}). "
                                 f"A good moment to share {self.url}", viewers=count, record=False)

    def _viewer_drop(self, now: float, count: int) -> None:
        live_since = self.live_since
        if not self.cfg.viewer_drop_fraction or live_since is None or now - live_since < MIN_HISTORY_S:
            return
        earlier = [c for t, c in self.viewers if t <= now - MINUTE]
        if len(earlier) < 2:
            return
        norm = float(statistics.median(earlier))
        if norm < self.cfg.viewer_drop_min or count > norm * (1 - self.cfg.viewer_drop_fraction):
            return
        self._unusual("viewer_drop", f"Unusual activity: viewers fell to {count} from about {norm:g}. "
                                     f"Change something, or ask for a share: {self.url}", viewers=count, norm=norm)

    def _low_viewers(self, now: float, count: int) -> None:
        live_since = self.live_since
        if (not self.cfg.low_viewers or live_since is None or count >= self.cfg.low_viewers
                or now - live_since < self.cfg.low_viewers_after_s
                or now - self._last_low < self.cfg.low_viewers_every_s):
            return
        self._last_low = now
        self.notifier.notify("viewers_low", f"Viewer count is {count}. A share right now would help — "
                             f"here's the link: {self.url}", viewers=count, url=self.url)

    def _trade(self) -> None:
        if not self.cfg.trade_burst:
            return
        now = self.clock()
        self.trades.append(now)
        while self.trades and self.trades[0] < now - self.cfg.trade_burst_s:
            self.trades.popleft()
        if len(self.trades) >= self.cfg.trade_burst and now - self._last_burst >= self.cfg.trade_burst_s:
            self._last_burst = now
            self.notifier.notify("trade_burst", f"Trade burst: {len(self.trades)} trades of the token in the last "
                                 f"{self.cfg.trade_burst_s:g} s. Say it on stream while it is hot.",
                                 trades=len(self.trades))

    def _market_cap(self, value: object) -> None:
        step, floor = self.cfg.market_cap_step, self.cfg.market_cap_min
        if not isinstance(value, int | float) or step <= 1 or value < floor:
            return
        level = math.floor(math.log(value / floor, step) + 1e-9)  # floor, floor x step, floor x step², ...
        passed = floor * step ** level
        told = self._records.get("market_cap_level")
        if told is not None and level <= told:
            return
        self._remember("market_cap_level", level)
        self.notifier.notify("market_cap_step", f"Milestone: the token's market cap passed {passed:,.0f} "
                             f"(now {value:,.0f}).", market_cap=value, step=passed)

    # --- helpers ------------------------------------------------------------------------------

    def _unusual(self, what: str, text: str, **extra: Any) -> None:
        now = self.clock()
        if now - self._last_unusual.get(what, -1e18) < self.cfg.unusual_every_s:
            return
        self._last_unusual[what] = now
        self.notifier.notify("unusual_activity", text, kind=what, **extra)

    def _remember(self, key: str, value: float) -> None:
        self._records[key] = value
        if self.store is not None:
            with self.store.lock:
                self.store.update(milestones={**self.store.data.milestones, key: value})
