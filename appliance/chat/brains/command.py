"""The command brain: runs a program per turn — the turn as JSON on stdin, the reply as JSON on
stdout (``{"text": "..."}``; ``{"text": null}`` for no reply; optional ``"notes": {viewer_name:
note}`` written to viewer memory).

The program runs through :func:`appliance.core.proc.run_tool` (a timeout, no shell) with a
minimal environment (``PATH``, ``LANG``, ``HOME``): no token or key of the appliance reaches it.
A failure, a timeout or unreadable output falls back to the host brain for that turn.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from ...core.errors import ApplianceError
from ...core.proc import run_tool
from ...core.sanitize import clean_text
from .base import Brain, ChatContext, Turn
from .settings import CommandBrainConfig

log = logging.getLogger("appliance.chat")


def child_environment() -> dict[str, str]:
    """What an outside program gets: nothing secret."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/tmp")}  # noqa: S108 (a HOME to fall back on, nothing written here)


def reply_text(data: Any) -> str | None:
    """The reply in an outside brain's JSON answer (``text``, or ``reply``); None for no reply."""
    if isinstance(data, str):
        return data
    if not isinstance(data, dict):
        raise ValueError("the answer must be a JSON object")
    text = data.get("text", data.get("reply"))
    if text is not None and not isinstance(text, str):
        raise ValueError("'text' must be a string or null")
    return text


def remember_notes(data: Any, turn: Turn, ctx: ChatContext) -> None:
    """Notes an outside brain asked memory to keep (``{"notes": {name: text}}``)."""
    notes = data.get("notes") if isinstance(data, dict) else None
    if not isinstance(notes, dict) or ctx.memory is None:
        return
    by_name = {item.name: item.viewer.key for item in turn.items if item.viewer}
    for name, note in list(notes.items())[:10]:
        if name in by_name and isinstance(note, str):
            ctx.memory.note(by_name[name], note)


class CommandBrain:
    name = "command"

    def __init__(self, cfg: CommandBrainConfig, *, fallback: Brain,
                 scrub: Callable[[str], str] = lambda text: text) -> None:
        self.cfg, self.fallback, self.scrub = cfg, fallback, scrub

    def respond(self, turn: Turn, ctx: ChatContext) -> str | None:
        timeout = ctx.remaining(self.cfg.timeout_s)
        payload = self.scrub(json.dumps(ctx.payload(turn), ensure_ascii=False))
        try:
            out = run_tool(list(self.cfg.argv), timeout=max(0.2, timeout), env=child_environment(),
                           input=payload.encode("utf-8"), what="the command brain")
            data = json.loads(out.decode("utf-8", "replace") or "null")
            text = reply_text(data)
            remember_notes(data, turn, ctx)
        except (ApplianceError, ValueError) as exc:
            log.warning("command brain: %s; the host brain answers this turn", clean_text(str(exc), 200))
            return self.fallback.respond(turn, ctx)
        return clean_text(text, ctx.max_reply_chars) if text else None

    def proactive(self, ctx: ChatContext) -> str | None:
        return self.fallback.proactive(ctx)
