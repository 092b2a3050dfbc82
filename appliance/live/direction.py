"""The builder's answer to "which direction?" (the live notification asks it; skill step 9).

A direction comes from ``appliance direct TEXT`` (``POST /direction``), the console, the MCP
tool ``direction``, or a notification webhook that answers with ``{"direction": "..."}``. It is
cleaned (no control characters, at most ``live.direction.max_chars``), kept in ``state.json``
(a restart keeps it), shown as the topic under the agent's name, put into the brain's context
(``ChatContext.direction``: the llm's prompt, the payload of outside brains, the host's
proactive lines), and published on the event bus (``direction``). It stays until the next one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..chat import ChatLoop
from ..core.errors import InputError
from ..core.sanitize import clean_text
from ..core.store import StateStore
from .machine import Publish
from .parts import no_publish
from .settings import DirectionConfig

log = logging.getLogger("appliance.live.direction")
SOURCES = ("cli", "console", "mcp", "api", "webhook")


class Directions:
    """The current direction and where it goes (screen, brain, bus); thread-safe."""

    def __init__(self, cfg: DirectionConfig, *, store: StateStore, topic: Callable[[str], None] = lambda text: None,
                 publish: Publish = no_publish, wall: Callable[[], float] = time.time) -> None:
        self.cfg, self.store, self.topic, self.publish, self.wall = cfg, store, topic, publish, wall
        self._lock = threading.Lock()
        self._chat: ChatLoop | None = None
        saved = store.data.direction or {}
        self.current = clean_text(saved.get("text", ""), cfg.max_chars)
        if self.current:
            topic(self.current)

    def attach(self, chat: ChatLoop) -> None:
        """The chat of this run: its brains know the direction from now on."""
        with self._lock:
            self._chat = chat
            chat.ctx.direction = self.current

    def apply(self, text: str, source: str = "api") -> dict[str, Any]:
        """Set the direction (cleaned, bounded); what was set. InputError for empty text."""
        clean = clean_text(text, self.cfg.max_chars)
        if not clean:
            raise InputError("a direction must have some text", fix='appliance direct "a quiz about the ocean"')
        origin = source if source in SOURCES else "api"
        with self._lock:
            self.current = clean
            self.store.update(direction={"text": clean, "source": origin, "time": round(self.wall(), 3)})
            if self._chat is not None:
                self._chat.ctx.direction = clean
        self.topic(clean)
        self.publish("direction", {"text": clean, "source": origin})
        log.info("direction from %s: %s", origin, clean)
        return {"direction": clean, "source": origin}

    def from_webhook(self, text: str) -> None:
        """A notification webhook's answer (``notify`` calls this; never raises)."""
        if not self.cfg.webhook_replies:
            return
        try:
            self.apply(text, "webhook")
        except InputError:
            log.info("a webhook answered with an empty direction: ignored")
