"""gTTS: Google's online voice, falling back to espeak-ng when it fails."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ..config import VoiceConfig
from ..errors import MediaError
from ..sanitize import clean_text
from .base import SYNTH_TIMEOUT_S, Voice, _out_file, _workdir
from .espeak import EspeakVoice

log = logging.getLogger("appliance.voice")


def _default_gtts() -> Callable[..., Any]:
    import gtts
    return gtts.gTTS


class GttsVoice:
    """Google TTS through gTTS (an mp3), with espeak-ng as the fallback when enabled."""

    def __init__(self, cfg: VoiceConfig, *, tts_factory: Callable[..., Any] | None = None,
                 fallback: Voice | None = None, workdir: Path | None = None,
                 timeout: float = SYNTH_TIMEOUT_S) -> None:
        self.cfg = cfg
        self.workdir = _workdir(workdir)
        self._factory = tts_factory or _default_gtts()
        self._timeout = timeout
        self.fallback = fallback if fallback is not None else (
            EspeakVoice(cfg, workdir=self.workdir) if cfg.fallback_to_espeak else None)

    def synthesize(self, text: str) -> Path:
        spoken = clean_text(text, self.cfg.max_chars)
        if not spoken:
            raise MediaError("nothing to say: the text is empty after cleaning")
        out = _out_file(self.workdir, ".mp3")
        try:
            self._factory(text=spoken, lang=self.cfg.language, timeout=self._timeout).save(str(out))
            if out.stat().st_size == 0:
                raise MediaError("gTTS wrote an empty file")
            return out
        except Exception as exc:  # noqa: BLE001 - gTTSError, requests errors, anything: fall back
            out.unlink(missing_ok=True)
            reason = f"{type(exc).__name__}: {exc}"
            if self.fallback is None:
                raise MediaError(f"gTTS failed ({reason})",
                                 fix="check the network, or set voice.fallback_to_espeak") from None
            log.warning("gTTS failed (%s): speaking with espeak-ng instead", reason)
            return self.fallback.synthesize(spoken)
