"""Telling the human operator: live, the tweet to post, viewers low, trouble, large tips, cool-down,
a shutdown warning, unusual activity, milestones, the heartbeat (what to tell is decided by
:mod:`.watch`, :mod:`.steps`, :mod:`.supervise` and :mod:`.heartbeat`).

Every notification is a JSON line in the notifications file (state folder) and a log line, at
once; then it is POSTed to every webhook that wants it — ``notify.webhook_url`` (generic JSON)
and each of ``notify.webhooks`` (generic JSON, or shaped for Discord or Slack) — by a background
thread per webhook: retries with capped, jittered exponential backoff (``notify.retries``,
``notify.backoff_s``), a timeout per attempt, a bounded queue. A failing or slow webhook never
blocks the stream, and nothing secret is ever in a notification.

An **urgent** notification (a platform shutdown warning: "treat it as a crisis") goes to every
webhook whatever its ``events`` filter, ahead of anything queued (never dropped for a full
queue), marked ``"urgent": true`` (Discord: ``@here``, Slack: ``<!channel>``).

A generic webhook may answer a notification with the builder's direction — a JSON body
``{"direction": "..."}`` (at most 16 KB read) — which goes to ``on_direction``
(:meth:`appliance.live.direction.Directions.from_webhook`).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
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
REPLY_MAX_BYTES = 16_384  # a webhook's answer read for a direction, at most


def shape(preset: str, record: dict[str, Any]) -> dict[str, Any]:
    """The body a webhook of this preset expects."""
    title = record["event"].replace("_", " ")
    urgent = bool(record.get("urgent"))
    if urgent:
        title = f"URGENT: {title}"
    if preset == "discord":  # https://discord.com/developers/docs/resources/webhook#execute-webhook
        text = record["text"].replace("@", "@\u200b")  # only our own @here may ping
        return {"content": f"{'@here ' if urgent else ''}**{title}**: {text}"[:2000], "username": "retake appliance",
                "allowed_mentions": {"parse": ["everyone"] if urgent else []}}
    if preset == "slack":  # incoming webhooks: {"text": ...}
        text = record["text"].replace("<!", "< !")  # only our own <!channel> may ping
        return {"text": f"{'<!channel> ' if urgent else ''}*{title}*: {text}"[:3000]}
    return record


class _Worker:
    """One webhook's queue and thread: a slow or failing webhook delays only itself. Urgent
    jobs go first and are never dropped (the oldest ordinary job makes room)."""

    def __init__(self, target: WebhookTarget, deliver: Callable[[WebhookTarget, dict[str, Any], str], None]) -> None:
        self.target, self.deliver = target, deliver
        self._jobs: deque[tuple[dict[str, Any], str] | None] = deque()
        self._urgent: deque[tuple[dict[str, Any], str]] = deque()
        self._cond = threading.Condition()
        self.unfinished = 0
        self.thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.thread.start()

    def put(self, job: tuple[dict[str, Any], str], *, urgent: bool = False) -> bool:
        """Queue a job; False when the queue is full (an ordinary job only)."""
        with self._cond:
            if urgent:
                if len(self._jobs) + len(self._urgent) >= QUEUE_MAX and self._jobs:
                    self._jobs.popleft()
                    self.unfinished -= 1
                self._urgent.append(job)
            elif len(self._jobs) + len(self._urgent) >= QUEUE_MAX:
                return False
            else:
                self._jobs.append(job)
            self.unfinished += 1
            self._cond.notify()
            return True

    def close(self) -> None:
        with self._cond:
            self._jobs.append(None)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._urgent and not self._jobs:
                    self._cond.wait()
                job = self._urgent.popleft() if self._urgent else self._jobs.popleft()
            if job is None:
                return
            try:
                self.deliver(self.target, *job)
            finally:
                with self._cond:
                    self.unfinished -= 1


class Notifier:
    def __init__(self, settings: Settings, *, session: requests.Session | None = None,
                 sleep: Callable[[float], None] | None = None, rng: random.Random | None = None,
                 on_direction: Callable[[str], None] | None = None) -> None:
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
        self.on_direction = on_direction  # a generic webhook's answer {"direction": ...} goes here
        self.delivered = 0
        self.failed = 0

    def notify(self, event: str, text: str, *, urgent: bool = False, **extra: Any) -> None:
        """Record now; deliver to webhooks in the background (never blocks, never raises).
        ``urgent``: to every webhook whatever its ``events``, ahead of the queue."""
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event,
                  "text": text, **({"urgent": True} if urgent else {}), **extra}
        log.log(logging.WARNING if urgent else logging.INFO, "NOTIFY%s %s: %s", " URGENT" if urgent else "",
                event, text.replace("\n", " | "))
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self.file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as exc:
            log.warning("could not write %s: %s", self.file, exc)
        for index, target in enumerate(self.targets):
            if target.events and event not in target.events and not urgent:
                continue
            with self._lock:
                if index not in self._workers:
                    self._workers[index] = _Worker(target, self._deliver)
                worker = self._workers[index]
            if not worker.put((shape(target.preset, record), event), urgent=urgent):
                self.failed += 1
                log.warning("notification queue full: %s not sent to a webhook", event)

    def _deliver(self, target: WebhookTarget, body: dict[str, Any], event: str) -> None:
        host = target.url.split("/")[2] if "://" in target.url else "?"
        reason = "not sent"
        for attempt in range(self.cfg.retries + 1):
            try:
                response = self._session.post(target.url, json=body, timeout=self.cfg.timeout_s,
                                              allow_redirects=False, stream=True)
                if response.status_code < 300:
                    self.delivered += 1
                    if target.preset == "generic" and self.on_direction is not None:
                        self._direction_in(response)
                    response.close()
                    return
                response.close()
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

    def _direction_in(self, response: requests.Response) -> None:
        """A webhook's answer with the builder's direction (read bounded; anything else ignored)."""
        try:
            raw = response.raw.read(REPLY_MAX_BYTES + 1, decode_content=True)
            if not raw.strip() or len(raw) > REPLY_MAX_BYTES:
                return
            answer = json.loads(raw)
        except (ValueError, OSError, requests.RequestException):
            return
        if isinstance(answer, dict) and isinstance(answer.get("direction"), str) and self.on_direction is not None:
            try:
                self.on_direction(answer["direction"])
            except Exception:
                log.exception("the direction a webhook answered was not taken")

    def close(self, timeout: float = 5.0) -> None:
        """Let queued notifications go out for at most ``timeout`` seconds, then stop."""
        deadline = time.monotonic() + timeout
        workers = list(self._workers.values())
        while any(w.unfinished for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        for worker in workers:
            worker.close()
