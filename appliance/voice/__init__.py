"""Text to speech into the PulseAudio sink: one module per engine behind :mod:`.base`, chosen
by :mod:`.engines` from the config, and the speech queue (:mod:`.queue`) that plays into the sink."""

from .base import FallbackVoice, Voice
from .command import CommandVoice
from .engines import make_voice
from .espeak import EspeakVoice
from .gtts import GttsVoice
from .pulse import PulsePlayer
from .queue import (
           PaplayPlayer,
           Priority,
           Speech,
           SpeechQueue,
           Utterance,
           split_sentences,
           tools_missing,
           wav_seconds,
)

__all__ = ["CommandVoice", "EspeakVoice", "FallbackVoice", "GttsVoice", "PaplayPlayer", "Priority",
           "PulsePlayer", "Speech", "SpeechQueue", "Utterance", "Voice", "make_voice", "split_sentences",
           "tools_missing", "wav_seconds"]
