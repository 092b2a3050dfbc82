"""The voice engine the config names."""

from __future__ import annotations

from ..config import VoiceConfig
from .base import Voice
from .espeak import EspeakVoice
from .gtts import GttsVoice


def make_voice(cfg: VoiceConfig) -> Voice:
    """The voice the config asks for."""
    if cfg.engine == "gtts":
        return GttsVoice(cfg)
    return EspeakVoice(cfg)
