"""espeak-ng's phonemes with their samples, from the library and the program (the voice the avatar's
mouth follows): a real espeak-ng. The avatar's logic without processes: tests/unit/test_avatar.py."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from appliance.voice.espeak import EspeakLibrary, EspeakVoice
from appliance.voice.lipsync import SHAPES
from appliance.voice.settings import EspeakVoiceConfig


def test_espeak_reports_its_phonemes_with_their_samples(tmp_path: Path):
    library = EspeakLibrary.load()
    if library is None:
        pytest.skip("libespeak-ng is not installed")
    voice = EspeakVoice(EspeakVoiceConfig())
    wav, cues = voice.synthesize_timed("I see a map.", tmp_path)
    with wave.open(str(wav), "rb") as w:
        seconds = w.getnframes() / w.getframerate()
    assert 0.5 < seconds < 3
    assert cues[0].shape == "D" and cues[0].t < 0.05        # "I": wide open, from the first sound
    assert "A" in {c.shape for c in cues}                    # the m and p of "map": lips closed
    assert cues[-1].shape == "X" and cues[-1].t <= seconds + 0.01
    assert set("".join(c.shape for c in cues)) <= set(SHAPES)
    # the same voice as the program's (the library is what the program runs)
    program = EspeakVoice(EspeakVoiceConfig(), library=None).synthesize("I see a map.", tmp_path)
    with wave.open(str(program), "rb") as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(seconds, rel=0.05)
