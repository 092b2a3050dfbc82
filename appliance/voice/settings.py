"""Settings of the voice: one model per engine, chosen by ``engine`` (a discriminated union),
and the background music."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from ..core.settings import SettingsModel


class MusicConfig(SettingsModel):
    """A background music loop into the sink, ducked while the agent speaks."""

    file: Path                                                   # any format FFmpeg reads
    volume: Annotated[int, Field(ge=0, le=100)] = 30             # % of full level
    duck_to: Annotated[int, Field(ge=0, le=100)] = 8             # % while the agent speaks


class _VoiceBase(SettingsModel):
    """What every voice engine shares: how text is cut, queued and played. The espeak-ng
    settings are every engine's too: espeak-ng is the fallback when another engine fails."""

    max_chars: Annotated[int, Field(ge=20, le=2000)] = 400       # one utterance; longer is cut
    espeak_voice: Annotated[str, Field(pattern=r"^[A-Za-z0-9_+-]+$")] = "en-us"
    words_per_minute: Annotated[int, Field(ge=80, le=400)] = 165
    pitch: Annotated[int, Field(ge=0, le=99)] = 50
    queue_max: Annotated[int, Field(ge=1, le=100)] = 8           # utterances waiting (see voice/queue.py)
    max_wait_s: Annotated[float, Field(ge=1, le=600)] = 60.0     # a reply waiting longer is stale: dropped
    volume: Annotated[int, Field(ge=0, le=150)] = 100            # the voice's level, % (the sink's own stays)
    music: MusicConfig | None = None


class EspeakVoiceConfig(_VoiceBase):
    """espeak-ng: offline, always there (the default)."""

    engine: Literal["espeak"] = "espeak"


class GttsVoiceConfig(_VoiceBase):
    """Google's voice through gTTS (needs the internet); cached per text, throttled, and
    espeak-ng when it fails."""

    engine: Literal["gtts"]
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")] = "en"
    fallback_to_espeak: bool = True
    min_interval_s: Annotated[float, Field(ge=0, le=60)] = 1.0   # between two requests to Google
    cache_entries: Annotated[int, Field(ge=0, le=10000)] = 200   # mp3s kept in <state>/cache/voice


class CommandVoiceConfig(_VoiceBase):
    """Any program that reads the text on stdin and writes WAV (or raw PCM) on stdout: Piper,
    a cloud TTS script, ... Run without a shell, with a timeout; espeak-ng when it fails."""

    engine: Literal["command"]
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    output: Literal["wav", "raw"] = "wav"
    raw_sample_rate: Annotated[int, Field(ge=8000, le=96000)] = 22050   # raw: s16le at this rate
    raw_channels: Literal[1, 2] = 1
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    fallback_to_espeak: bool = True


VoiceConfig = Annotated[EspeakVoiceConfig | GttsVoiceConfig | CommandVoiceConfig,
                        Field(discriminator="engine")]
AnyVoiceConfig = EspeakVoiceConfig | GttsVoiceConfig | CommandVoiceConfig
