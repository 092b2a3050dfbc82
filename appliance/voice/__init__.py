"""Text to speech into the PulseAudio sink: one module per engine behind :mod:`.base`, chosen
by :mod:`.engines` from the config, and the speaker (:mod:`.queue`) that plays into the sink."""

from .base import Voice
from .engines import make_voice
from .espeak import EspeakVoice
from .gtts import GttsVoice
from .queue import Speaker, tools_missing, wav_seconds

__all__ = ["EspeakVoice", "GttsVoice", "Speaker", "Voice", "make_voice", "tools_missing", "wav_seconds"]
