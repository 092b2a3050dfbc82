"""gTTS: Google's online voice. Cached per text (``<state>/cache/voice``, the newest
``cache_entries`` kept), throttled (``min_interval_s`` between requests), and espeak-ng when
it fails (:class:`~appliance.voice.base.FallbackVoice`, one warning)."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import MediaError
from .base import SYNTH_TIMEOUT_S, out_file, spoken
from .settings import GttsVoiceConfig


def _default_gtts() -> Callable[..., Any]:
    import gtts
    return gtts.gTTS


class GttsVoice:
    """Google TTS through gTTS (an mp3 file); raises on any failure (wrap it for the fallback)."""

    name = "gTTS"

    def __init__(self, cfg: GttsVoiceConfig, *, cache_dir: Path | None,
                 tts_factory: Callable[..., Any] | None = None, timeout: float = SYNTH_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.cache_dir = cache_dir
        self._factory = tts_factory or _default_gtts()
        self._timeout = timeout
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._last_request: float | None = None
        self.requests = 0

    def _cached(self, text: str) -> Path | None:
        if self.cache_dir is None or self.cfg.cache_entries == 0:
            return None
        digest = hashlib.sha256(f"{self.cfg.language}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{digest}.mp3"

    def _throttle(self) -> None:
        if self._last_request is not None:
            wait = self.cfg.min_interval_s - (self._clock() - self._last_request)
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def _evict(self) -> None:
        if self.cache_dir is None:
            return
        files = sorted(self.cache_dir.glob("*.mp3"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[self.cfg.cache_entries:]:
            old.unlink(missing_ok=True)

    def synthesize(self, text: str, workdir: Path) -> Path:
        said = spoken(text, self.cfg.max_chars)
        out = out_file(workdir, ".mp3")
        cached = self._cached(said)
        if cached is not None and cached.is_file() and cached.stat().st_size > 0:
            shutil.copyfile(cached, out)
            cached.touch()
            return out
        try:
            with self._lock:
                self._throttle()
                self.requests += 1
                self._factory(text=said, lang=self.cfg.language, timeout=self._timeout).save(str(out))
            if out.stat().st_size == 0:
                raise MediaError("gTTS wrote an empty file")
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(out, cached)
            self._evict()
        return out
