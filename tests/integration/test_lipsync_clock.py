"""The voice's clock against the sink's: a real PulseAudio, the speech played by PulsePlayer,
and FFmpeg recording the sink's monitor as the encoder does (its own timestamps, on the wall
clock). ``audible_at`` must say when each sound is really in the monitor, known before it; a
stop must cut the sound at once; the speech queue must publish the mouth's timings with it."""

from __future__ import annotations

import math
import re
import statistics
import struct
import subprocess
import time
import wave
from pathlib import Path

from appliance.voice import SpeechQueue, make_voice
from appliance.voice.pulse import PulsePlayer
from tests.support.media import require

RATE = 22050


def tone_wav(path: Path, silence_s: float, tone_s: float) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        frames = [0] * int(RATE * silence_s) + [int(12000 * math.sin(2 * math.pi * 440 * i / RATE))
                                                for i in range(int(RATE * tone_s))]
        wav.writeframes(struct.pack(f"<{len(frames)}h", *frames))
    return path


class Monitor:
    """FFmpeg reading the sink's monitor (as the encoder does): peak level per 10 ms, wall-clock stamped."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-nostdin", "-copyts", "-f", "pulse", "-sample_rate", "44100", "-channels", "2",
             "-fragment_size", "8820", "-i", "stream.monitor", "-af",
             f"asetnsamples=n=441,astats=metadata=1:reset=1,ametadata=mode=print:key=lavfi.astats.Overall.Peak_level"
             f":file={out}", "-f", "null", "-"])
        time.sleep(2.5)  # the idle null sink's first long block is over

    def onsets(self) -> list[float]:
        """Wall-clock seconds of each sound's first 10 ms above -30 dBFS."""
        self.proc.terminate()
        self.proc.wait(10)
        onsets, t, inside = [], 0.0, False
        for line in self.out.read_text().splitlines():
            if "pts:" in line:
                t = int(re.search(r"pts:(\d+)", line).group(1)) / 44100
            elif "Peak_level=" in line:
                value = line.split("=", 1)[1].strip()
                level = -200.0 if "inf" in value else float(value)
                if level > -30 and not inside:
                    onsets.append(t)
                    inside = True
                elif level < -60 and inside:
                    inside = False
        return onsets


def test_audible_at_is_when_the_monitor_hears_it_and_known_before(pulse_server: str, tmp_path: Path) -> None:
    require("ffmpeg")
    wav = tone_wav(tmp_path / "t.wav", 0.5, 0.4)
    monitor = Monitor(tmp_path / "levels.txt")
    player = PulsePlayer("stream")
    wall = time.time() - time.monotonic()
    predicted, ahead = [], []
    for i in range(6):
        playing = player.start(wav)
        ahead.append(playing.audible_at - time.monotonic())
        predicted.append(playing.audible_at + 0.5 + wall)
        playing.wait(5)
        time.sleep(0.3 + 0.05 * i)
    heard = monitor.onsets()
    assert len(heard) == len(predicted), (heard, predicted)
    errors = [h - p for h, p in zip(heard, predicted, strict=True)]
    print(f"\naudible_at: heard - predicted (ms) {[round(e * 1000, 1) for e in errors]}, "
          f"known ahead (ms) {[round(a * 1000) for a in ahead]}")
    assert min(ahead) > 0.1                                   # in time to tell the renderer
    assert abs(statistics.median(errors)) < 0.035 and max(abs(e) for e in errors) < 0.06, errors


def test_a_stop_cuts_the_sound_at_once(pulse_server: str, tmp_path: Path) -> None:
    require("ffmpeg")
    wav = tone_wav(tmp_path / "t.wav", 0.0, 3.0)
    out = tmp_path / "levels.txt"
    monitor = Monitor(out)
    wall = time.time() - time.monotonic()
    playing = PulsePlayer("stream").start(wav)
    time.sleep(0.3)
    playing.stop()
    stopped = time.monotonic() + wall
    playing.wait(2)
    time.sleep(0.5)
    monitor.onsets()
    loud, t = [], 0.0
    for line in out.read_text().splitlines():
        if "pts:" in line:
            t = int(re.search(r"pts:(\d+)", line).group(1)) / 44100
        elif "Peak_level=" in line and "inf" not in line and float(line.split("=", 1)[1]) > -30:
            loud.append(t)
    assert loud and max(loud) - stopped < 0.1, (max(loud) - stopped)


def test_the_queue_publishes_when_each_sentence_is_heard_and_its_mouth(pulse_server: str, tmp_path: Path) -> None:
    require("espeak-ng")
    events: list[tuple[str, dict]] = []
    with SpeechQueue(make_voice(), PulsePlayer("stream"), workdir=tmp_path / "speech",
                     on_event=lambda kind, data: events.append((kind, data))) as queue:
        published = []
        original = queue.on_event

        def stamp(kind: str, data: dict) -> None:
            published.append(time.monotonic())
            original(kind, data)
        queue.on_event = stamp
        utt = queue.say("I see a map. Another one.")
        assert utt.wait(20) and utt.status == "spoken", utt
    started = [(stamp, d) for stamp, (k, d) in zip(published, events, strict=True) if k == "sentence_started"]
    assert len(started) == 2
    for stamp, data in started:
        assert data["audible_at"] - stamp > 0.1               # published before it is heard
        shapes = "".join(shape for _, shape in data["cues"])
        assert shapes[-1] == "X" and set(shapes) <= set("XABCDEFGH")
    first = "".join(shape for _, shape in started[0][1]["cues"])
    assert first[0] == "D" and "A" in first                   # "I": wide open first; "map": lips closed
