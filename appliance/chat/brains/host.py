"""The host brain: the offline default (greets by name, answers commands, fills quiet minutes)."""

from __future__ import annotations

from ...retake.models import Comment
from .base import ChatContext


class OfflineResponder:
    """Greets by name, answers ``!help`` and ``!uptime``, and fills quiet minutes."""

    _ACKS = ("{name}, noted — that goes on the list.", "Good one, {name}. Keep them coming.",
             "{name} is steering now. Anyone want to counter that?",
             "Heard you, {name}. Chat, do we go with it?")
    _QUIET = ("Quiet chat, so I pick: {idea}. Object now or it happens.",
              "Still here, still running. Next up: {idea}. Say !help for commands.",
              "Dead air is not allowed on this channel. Vote: {idea} — yes or no?")

    def __init__(self) -> None:
        self._ack = 0
        self._quiet = 0

    def reply(self, message: Comment, ctx: ChatContext) -> str | None:
        text, name = message.text.strip(), message.username
        command = text.split()[0].lower() if text else ""
        if command == "!help":
            return f"{name}: commands are !help and !uptime. Anything else, just say it."
        if command == "!uptime":
            return f"{name}: live for {ctx.uptime()}."
        if ctx.known_viewers.get(name, 0) <= 1:
            return f"Welcome, {name}! Glad you're here."
        template = self._ACKS[self._ack % len(self._ACKS)]
        self._ack += 1
        return template.format(name=name)

    def proactive(self, ctx: ChatContext) -> str | None:
        ideas = ctx.ideas or ["a live experiment"]
        line = self._QUIET[self._quiet % len(self._QUIET)].format(idea=ideas[self._quiet % len(ideas)])
        self._quiet += 1
        return line
