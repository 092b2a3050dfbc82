"""Brains (responders): one module per brain behind :mod:`.base`, chosen by ``chat.brain.engine``
through the :data:`BRAINS` registry (as the voices are, :mod:`appliance.voice.engines`).

    host      offline default; every other brain's fallback     (:mod:`.host`)
    llm       an OpenAI-compatible chat-completions endpoint     (:mod:`.llm`)
    command   a program: JSON in on stdin, JSON out on stdout     (:mod:`.command`)
    webhook   an HTTP endpoint: JSON POSTed, JSON answered        (:mod:`.webhook`)
    external  an outside agent via GET /events + POST /reply      (:mod:`.external`)

Each factory imports its module when it is chosen, so a brain nobody uses costs no import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ...core.secrets import SecretStore
from ..memory import ViewerMemory
from ..settings import ProactiveConfig
from .base import Brain, ChatContext, Incoming, Responder, Turn, plan_turns
from .host import HostBrain, OfflineResponder, ProactiveBank
from .settings import (
    AnyBrainConfig,
    CommandBrainConfig,
    ExternalBrainConfig,
    HostBrainConfig,
    LlmBrainConfig,
    WebhookBrainConfig,
)


@dataclass(frozen=True)
class BrainParts:
    """What a brain is built with besides its own settings."""

    fallback: HostBrain             # answers what the brain cannot (in time); fills quiet moments
    persona: str                    # the agent's persona for a prompt (llm)
    scrub: Callable[[str], str]     # takes secrets out of anything that leaves for a brain
    environ: Mapping[str, str]      # where keys named in the settings are read


C = TypeVar("C", bound=AnyBrainConfig)
Factory = Callable[[AnyBrainConfig, BrainParts], Brain]


def _factory(kind: type[C], build: Callable[[C, BrainParts], Brain]) -> Factory:
    def make(cfg: AnyBrainConfig, parts: BrainParts) -> Brain:
        if not isinstance(cfg, kind):
            raise TypeError(f"brain {cfg.engine!r} built from {type(cfg).__name__}, not {kind.__name__}")
        return build(cfg, parts)
    return make


def _host(cfg: HostBrainConfig, parts: BrainParts) -> Brain:
    return parts.fallback


def _llm(cfg: LlmBrainConfig, parts: BrainParts) -> Brain:
    from .llm import LlmBrain
    return LlmBrain(cfg, fallback=parts.fallback, persona=parts.persona, scrub=parts.scrub, environ=parts.environ)


def _command(cfg: CommandBrainConfig, parts: BrainParts) -> Brain:
    from .command import CommandBrain
    return CommandBrain(cfg, fallback=parts.fallback, scrub=parts.scrub)


def _webhook(cfg: WebhookBrainConfig, parts: BrainParts) -> Brain:
    from .webhook import WebhookBrain
    return WebhookBrain(cfg, fallback=parts.fallback, scrub=parts.scrub, environ=parts.environ)


def _external(cfg: ExternalBrainConfig, parts: BrainParts) -> Brain:
    from .external import ExternalBrain
    return ExternalBrain(cfg, fallback=parts.fallback)


BRAINS: dict[str, Factory] = {
    "host": _factory(HostBrainConfig, _host), "llm": _factory(LlmBrainConfig, _llm),
    "command": _factory(CommandBrainConfig, _command), "webhook": _factory(WebhookBrainConfig, _webhook),
    "external": _factory(ExternalBrainConfig, _external)}


def make_brain(cfg: AnyBrainConfig, *, proactive: ProactiveConfig, persona: str,
               memory: ViewerMemory | None = None, scrub: Callable[[str], str] = lambda text: text,
               environ: Mapping[str, str] | None = None) -> Brain:
    """The brain ``chat.brain`` names, with the host brain (lines from ``proactive``) as its fallback."""
    host = HostBrain(bank=ProactiveBank(proactive, memory=memory), mention_max=cfg.mention_max)
    parts = BrainParts(fallback=host, persona=persona, scrub=scrub,
                       environ=environ if environ is not None else SecretStore())
    return BRAINS[cfg.engine](cfg, parts)


__all__ = ["BRAINS", "Brain", "BrainParts", "ChatContext", "HostBrain", "Incoming", "OfflineResponder",
           "ProactiveBank", "Responder", "Turn", "make_brain", "plan_turns"]
