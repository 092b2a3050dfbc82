"""What the mouth does while the voice speaks: a list of :class:`Cue` (a time in the sentence's
audio and a mouth shape), made from what the engine reports.

Mouth shapes are Rhubarb Lip Sync's nine (the de-facto standard of 2D animation, and what
PNGTuber packs can be mapped onto): ``X`` rest, ``A`` closed (M, B, P), ``B`` slightly open with
clenched teeth (most consonants, "ee"), ``C`` open (e, æ), ``D`` wide open (ɑ), ``E`` slightly
rounded (ɔ, ɜ), ``F`` puckered (u, o, w), ``G`` upper teeth on the lower lip (f, v), ``H`` tongue
raised (l).

Two sources:
  * :func:`phoneme_cues` — espeak-ng's phoneme events (IPA, with the sample each starts at, see
    :mod:`.espeak`): the real articulation, timed to the sample.
  * :func:`envelope_cues` — for an engine that only gives audio (gTTS, a command): the amplitude
    envelope in 20 ms windows; loud opens the jaw wide, soft half, silence closes it.

The cue times are seconds from the first sample of the sentence's audio (before the first cue
and after the last, the mouth rests); the player tells when that sample is heard
(:mod:`.pulse`), and the avatar turns cue times into frames.
"""

from __future__ import annotations

import array
import math
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

SHAPES = "XABCDEFGH"       # the wire alphabet: appliance.scene.model checks the same letters
MAX_CUES = 4000            # one sentence (200 characters) has ~150; a bound for the wire
ENVELOPE_WINDOW_S = 0.02
MIN_CUE_S = 0.04           # shorter shapes are merged into the next: a flicker nobody reads


@dataclass(frozen=True)
class Cue:
    """From ``t`` seconds into the sentence's audio, the mouth shows ``shape``."""

    t: float
    shape: str


# IPA (espeak-ng's phoneme events with espeakINITIALIZE_PHONEME_IPA) -> mouth shape. Longest
# prefix wins: "oʊ" is F, "o" alone too; diphthongs take the shape of their first vowel.
_IPA: dict[str, str] = {
    # closed lips
    "p": "A", "b": "A", "m": "A", "ɱ": "G",
    # teeth on lip
    "f": "G", "v": "G",
    # tongue raised
    "l": "H", "ɫ": "H", "əl": "H", "ɬ": "H", "ʎ": "H",
    # rounded, puckered
    "u": "F", "uː": "F", "ʊ": "F", "w": "F", "o": "F", "oʊ": "F", "oː": "F", "ʍ": "F", "ɥ": "F",
    "y": "F", "ʏ": "F", "ø": "F", "œ": "E",
    # slightly rounded
    "ɔ": "E", "ɔː": "E", "ɔɪ": "E", "ɜ": "E", "ɜː": "E", "ɝ": "E", "ɚ": "E", "ɹ": "E", "r": "E",
    "ʃ": "E", "ʒ": "E", "tʃ": "E", "dʒ": "E", "ɒ": "E",
    # wide open
    "a": "D", "aː": "D", "ɑ": "D", "ɑː": "D", "aɪ": "D", "aʊ": "D", "ɐ": "D", "ɑ̃": "D",
    # open
    "æ": "C", "ɛ": "C", "e": "C", "eɪ": "C", "eː": "C", "ʌ": "C", "ə": "C", "ɪə": "C", "ɛə": "C",
    "ɛɹ": "C", "h": "C", "ɐ̃": "C", "ɛ̃": "C", "ɔ̃": "E",
    # teeth together (most consonants, "ee")
    "i": "B", "iː": "B", "ɪ": "B", "j": "B", "s": "B", "z": "B", "t": "B", "d": "B", "n": "B",
    "k": "B", "ɡ": "B", "g": "B", "ŋ": "B", "θ": "B", "ð": "B", "ɾ": "B", "ʔ": "B", "x": "B",
    "ç": "B", "ʁ": "B", "ɲ": "B", "ts": "B", "dz": "B", "ʀ": "B", "ɣ": "B", "β": "G",
}
_MARKS = "ˈˌːˑ̃.‿-_"    # stress and length marks around espeak's IPA names


def viseme(ipa: str) -> str:
    """The mouth shape for one IPA phoneme (as espeak-ng names it); ``X`` for a pause."""
    name = ipa.strip()
    if not name:
        return "X"
    bare = name.strip(_MARKS) or name
    for candidate in (name, bare):
        for end in range(len(candidate), 0, -1):
            shape = _IPA.get(candidate[:end])
            if shape is not None:
                return shape
    return "B"  # an unknown consonant: teeth together is the safest guess


def merge(cues: list[Cue], *, min_s: float = MIN_CUE_S) -> list[Cue]:
    """Sorted cues without repeats (the same shape twice in a row) and without flickers: a shape
    that would show for less than ``min_s`` gives way to the next one, which then starts when
    the short one would have (so the mouth still opens with the first sound). At most ``MAX_CUES``."""
    out: list[Cue] = []
    for cue in sorted(cues, key=lambda c: c.t):
        if out and cue.t - out[-1].t < min_s:
            out[-1] = Cue(out[-1].t, cue.shape)
        else:
            out.append(cue)
        if len(out) >= 2 and out[-1].shape == out[-2].shape:
            out.pop()
    return out[:MAX_CUES]


def phoneme_cues(phonemes: list[tuple[float, str]], end_s: float) -> list[Cue]:
    """Cues from (start seconds, IPA name) pairs; the mouth rests from ``end_s`` on."""
    cues = [Cue(round(max(0.0, t), 3), viseme(name)) for t, name in phonemes]
    return merge([*cues, Cue(round(end_s, 3), "X")])


def envelope_cues(levels: list[float], window_s: float = ENVELOPE_WINDOW_S, *,
                  quiet_db: float = -38.0) -> list[Cue]:
    """Cues from windowed RMS levels (dBFS): the loudness decides how far the jaw opens, relative
    to the loudest part of the sentence (so a quiet voice still moves its mouth)."""
    if not levels:
        return []
    peak = max(levels)
    cues = []
    for i, level in enumerate(levels):
        if level < max(quiet_db, peak - 30):
            shape = "X"
        elif level > peak - 6:
            shape = "D"
        elif level > peak - 12:
            shape = "C"
        else:
            shape = "B"
        cues.append(Cue(round(i * window_s, 3), shape))
    cues.append(Cue(round(len(levels) * window_s, 3), "X"))
    return merge(cues)


def wav_levels(path: Path, window_s: float = ENVELOPE_WINDOW_S) -> list[float]:
    """RMS level (dBFS) of each ``window_s`` of a 16-bit wav file (all channels together)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError("only 16-bit PCM wav files have an envelope here")
        rate, channels = wav.getframerate(), wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    samples = array.array("h")
    samples.frombytes(frames[: len(frames) - len(frames) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    step = max(1, int(rate * window_s)) * channels
    levels = []
    for start in range(0, len(samples), step):
        chunk = samples[start:start + step]
        if not chunk:
            break
        mean = sum(s * s for s in chunk) / len(chunk)
        levels.append(20 * math.log10(math.sqrt(mean) / 32768) if mean > 0 else -120.0)
    return levels


def audio_cues(path: Path) -> list[Cue]:
    """The envelope cues of an audio file the engine gave without timings."""
    return envelope_cues(wav_levels(path))
