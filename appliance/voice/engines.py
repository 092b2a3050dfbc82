"""The voice engine the config names: a small registry, one module per engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .base import FallbackVoice, Voice
from .command import CommandVoice
from .espeak import EspeakVoice
from .gtts import GttsVoice
from .settings import (
    AnyVoiceConfig,
    CommandVoiceConfig,
    EspeakVoiceConfig,
    GttsVoiceConfig,
)


def _espeak(cfg: AnyVoiceConfig, cache_dir: Path | None) -> Voice:
    return EspeakVoice(cfg)


def _gtts(cfg: AnyVoiceConfig, cache_dir: Path | None) -> Voice:
    if not isinstance(cfg, GttsVoiceConfig):
        raise TypeError(f"voice engine gtts given {type(cfg).__name__}")
    return FallbackVoice(GttsVoice(cfg, cache_dir=cache_dir),
                         EspeakVoice(cfg) if cfg.fallback_to_espeak else None)


def _command(cfg: AnyVoiceConfig, cache_dir: Path | None) -> Voice:
    if not isinstance(cfg, CommandVoiceConfig):
        raise TypeError(f"voice engine command given {type(cfg).__name__}")
    return FallbackVoice(CommandVoice(cfg), EspeakVoice(cfg) if cfg.fallback_to_espeak else None)


ENGINES: dict[str, Callable[[AnyVoiceConfig, Path | None], Voice]] = {
    "espeak": _espeak, "gtts": _gtts, "command": _command}


def make_voice(cfg: AnyVoiceConfig | None = None, *, cache_dir: Path | None = None) -> Voice:
    """The voice the config asks for (``cache_dir``: where gTTS keeps its mp3s)."""
    cfg = cfg or EspeakVoiceConfig()
    return ENGINES[cfg.engine](cfg, cache_dir)
