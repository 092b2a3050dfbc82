"""Telling the human operator: live, the tweet to post, viewers low, trouble, large tips, cool-down.

Every notification is a JSON line in the notifications file (state folder) and a log line, at
once; then it is POSTed to every webhook that wants it — ``notify.webhook_url`` (generic JSON)
and each of ``notify.webhooks`` (generic JSON, or shaped for Discord or Slack) — by a background
thread: retries with capped, jittered exponential backoff (``notify.retries``,
``notify.backoff_s``), a timeout per attempt, a bounded queue. A failing or slow webhook never
blocks the stream, and nothing secret is ever in a notification.

:class:`StreamWatch` turns the event bus into notifications the platform's playbook asks for:
a large tip, viewers low mid-stream (with the share link), technical trouble (a recovery).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from ..core.sanitize import clean_text
from .settings import WebhookTarget

if TYPE_CHECKING:  # the composed settings, handed in by the composition root
    from ..config import Settings

log = logging.getLogger("appliance.live.notify")
QUEUE_MAX = 200


def shape(preset: str, record: dict[str, Any]) -> dict[str, Any]:
    """The body a webhook of this preset expects."""
    title = record["event"].replace("_", " ")
    if preset == "discord":  # https://discord.com/developers/docs/resources/webhook#execute-webhook
        return {"content": f"**{title}**: {record['text']}"[:2000], "username": "retake appliance",
                "allowed_mentions": {"parse": []}}
    if preset == "slack":  # incoming webhooks: {"text": ...}
        return {"text": f"*{title}*: {record['text']}"[:3000]}
    return record


class _Worker:
    """One webhook's queue and thread: a slow or failing webhook delays only itself."""

    def __init__(self, target: WebhookTarget, deliver: Callable[[WebhookTarget, dict[str, Any], str], None]) -> None:
        self.target, self.deliver = target, deliver
        self.jobs: queue.Queue[tuple[dict[str, Any], str] | None] = queue.Queue(maxsize=QUEUE_MAX)
        self.thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            self.deliver(self.target, *job)
            self.jobs.task_done()
        self.jobs.task_done()


class Notifier:
    def __init__(self, settings: Settings, *, session: requests.Session | None = None,
                 sleep: Callable[[float], None] | None = None, rng: random.Random | None = None) -> None:
        cfg = settings.notify
        self.cfg = cfg
        self.file: Path = settings.notify_file()
        self.webhook = cfg.webhook_url
        self.targets = ([WebhookTarget(url=cfg.webhook_url)] if cfg.webhook_url else []) + list(cfg.webhooks)
        self._session = session or requests.Session()
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0

    def notify(self, event: str, text: str, **extra: Any) -> None:
        """Record now; deliver to webhooks in the background (never blocks, never raises)."""
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event,
                  "text": text, **extra}
        log.info("NOTIFY %s: %s", event, text.replace("\n", " | "))
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self.file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as exc:
            log.warning("could not write %s: %s", self.file, exc)
        for index, target in enumerate(self.targets):
            if target.events and event not in target.events:
                continue
            with self._lock:
                if index not in self._workers:
                    self._workers[index] = _Worker(target, self._deliver)
                worker = self._workers[index]
            try:
                worker.jobs.put_nowait((shape(target.preset, record), event))
            except queue.Full:
                self.failed += 1
                log.warning("notification queue full: %s not sent to a webhook", event)

    def _deliver(self, target: WebhookTarget, body: dict[str, Any], event: str) -> None:
        host = target.url.split("/")[2] if "://" in target.url else "?"
        reason = "not sent"
        for attempt in range(self.cfg.retries + 1):
            try:
                response = self._session.post(target.url, json=body, timeout=self.cfg.timeout_s,
                                              allow_redirects=False)
                if response.status_code < 300:
                    self.delivered += 1
                    return
                retry_after = response.headers.get("Retry-After", "")
                reason = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # the webhook refuses this body: retrying will not help
            except requests.RequestException as exc:
                retry_after, reason = "", type(exc).__name__
            if attempt == self.cfg.retries or self._stop.is_set():
                break
            cap = self.cfg.backoff_s * 2 ** attempt
            delay = float(retry_after) if retry_after.isdigit() else self._rng.uniform(cap / 2, cap)
            log.info("webhook %s: %s; retry %d/%d in %.1f s", host, reason, attempt + 1, self.cfg.retries, delay)
            self._sleep(min(delay, 300.0))
        self.failed += 1
        log.warning("webhook %s: %s notification not delivered (%s)", host, event, clean_text(reason, 80))

    def close(self, timeout: float = 5.0) -> None:
        """Let queued notifications go out for at most ``timeout`` seconds, then stop."""
        deadline = time.monotonic() + timeout
        workers = list(self._workers.values())
        while any(w.jobs.unfinished_tasks for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        for worker in workers:
            try:
                worker.jobs.put_nowait(None)
            except queue.Full:
                pass


class StreamWatch:
    """Bus events -> operator notifications: large tips, viewers low mid-stream, trouble."""

    def __init__(self, notifier: Notifier, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier, self.cfg, self.clock = notifier, settings.notify, clock
        self.url = settings.stream_url()
        self.live_since: float | None = None
        self._last_low = -1e18
        self._last_trouble = -1e18

    def __call__(self, event: Any) -> None:
        kind, data = event.kind, event.data
        if kind == "state":
            state = data.get("state")
            if state == "live" and self.live_since is None:
                self.live_since = self.clock()
            elif state in ("stopping", "stopped", "failed"):
                self.live_since = None
            if state == "recovering" and self.clock() - self._last_trouble > 600:
                self._last_trouble = self.clock()
                self.notifier.notify("trouble", f"Technical trouble: {clean_text(data.get('detail', ''), 200)}. "
                                     "Recovering with fresh RTMP keys.")
        elif kind == "tip" and data.get("amount") is not None and data["amount"] >= self.cfg.large_tip_sol:
            name = (data.get("user") or {}).get("name", "a viewer")
            self.notifier.notify("large_tip", f"{name} tipped {data.get('amount'):g} SOL on stream.",
                                 amount=data.get("amount"))
        elif kind == "viewers":
            self._viewers(int(data.get("count") or 0))

    def _viewers(self, count: int) -> None:
        now = self.clock()
        if (not self.cfg.low_viewers or self.live_since is None or count >= self.cfg.low_viewers
                or now - self.live_since < self.cfg.low_viewers_after_s
                or now - self._last_low < self.cfg.low_viewers_every_s):
            return
        self._last_low = now
        self.notifier.notify("viewers_low", f"Viewer count is {count}. A share right now would help — "
                             f"here's the link: {self.url}", viewers=count, url=self.url)
