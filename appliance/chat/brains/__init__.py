"""Brains (responders): one module per brain behind :mod:`.base`, chosen by ``chat.responder``.

    host      offline default; every other brain's fallback     (:mod:`.host`)
    llm       an OpenAI-compatible chat-completions endpoint     (:mod:`.llm`)
    command   a program: JSON in on stdin, JSON out on stdout     (:mod:`.command`)
    webhook   an HTTP endpoint: JSON POSTed, JSON answered        (:mod:`.webhook`)
    external  an outside agent via GET /events + POST /reply      (:mod:`.external`)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..memory import ViewerMemory
from ..settings import ChatConfig
from .base import Brain, ChatContext, Incoming, Responder, Turn, plan_turns
from .host import HostBrain, OfflineResponder, ProactiveBank


def make_brain(cfg: ChatConfig, *, persona: str, memory: ViewerMemory | None = None,
               scrub: Callable[[str], str] = lambda text: text,
               environ: Mapping[str, str] | None = None) -> Brain:
    """The brain ``chat.responder`` names, with the host brain as its fallback."""
    host = HostBrain(bank=ProactiveBank(cfg.proactive, memory=memory), mention_max=cfg.host.mention_max)
    name = cfg.brain
    if name == "llm":
        from .llm import LlmBrain
        return LlmBrain(cfg.llm, fallback=host, persona=persona, scrub=scrub, environ=environ)
    if name == "command" and cfg.command is not None:
        from .command import CommandBrain
        return CommandBrain(cfg.command, fallback=host, scrub=scrub)
    if name == "webhook" and cfg.webhook is not None:
        from .webhook import WebhookBrain
        return WebhookBrain(cfg.webhook, fallback=host, scrub=scrub, environ=environ)
    if name == "external":
        from .external import ExternalBrain
        return ExternalBrain(cfg.external, fallback=host)
    return host


__all__ = ["Brain", "ChatContext", "HostBrain", "Incoming", "OfflineResponder", "ProactiveBank",
           "Responder", "Turn", "make_brain", "plan_turns"]
