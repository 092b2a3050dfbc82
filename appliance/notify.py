"""Telling the human operator: live, blocked on verification, failing, stopped.

Every notification is a JSON line in the notifications file (state folder) and a log line;
when ``notify.webhook_url`` is set it is also POSTed there (JSON ``{"event", "text", ...}``),
with a short timeout and no secrets in it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import requests

from .config import Settings

log = logging.getLogger("appliance.notify")


class Notifier:
    def __init__(self, settings: Settings, *, session: requests.Session | None = None) -> None:
        self.file: Path = settings.notify_file()
        self.webhook = settings.notify.webhook_url
        self._session = session or requests.Session()

    def notify(self, event: str, text: str, **extra: Any) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event,
                  "text": text, **extra}
        log.info("NOTIFY %s: %s", event, text.replace("\n", " | "))
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self.file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as exc:
            log.warning("could not write %s: %s", self.file, exc)
        if self.webhook:
            try:
                self._session.post(self.webhook, json=record, timeout=5).raise_for_status()
            except requests.RequestException as exc:
                log.warning("webhook notification failed: %s", type(exc).__name__)
