"""End to end: `appliance up` (the whole process tree, the real controller) against the
sandbox's nginx-rtmp ingest; what viewers get is checked by decoding the recording."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from appliance.control.client import ControlClient
from tests.support.data import WALLET
from tests.support.live import make_agent
from tests.support.sandbox import entry_name, entry_time
from tests.support.show import audio_levels
from tests.support.tree import (
    descendants,
    process_environ,
    process_name,
    short_tmpdir,
    start_time,
    terminate,
    wait_all_ended,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]


def ffprobe(path: Path, *args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)


def named(pid_set: set[int], name: str) -> list[int]:
    found = []
    for pid in pid_set:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                found.append(pid)
        except OSError:
            pass
    return found


def publishes(sb, after: int) -> int:
    return sum(1 for r in sb.requests()[after:] if entry_name(r) == "RTMP publish" and r.get("status") == 200)


@pytest.mark.timeout(240)
def test_up_goes_live_speaks_recovers_and_stops_cleanly(rtmp_sandbox, tmp_path):
    sb = rtmp_sandbox
    agent = make_agent(sb, tmp_path, "UpAgent")
    base = short_tmpdir("apup-")
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    cfg = base / "appliance.yaml"
    cfg.write_text(yaml.safe_dump({
        "agent": {"name": "UpAgent", "description": "d", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "CLI"},
        "retake": {"base_url": sb.base_url, "sandbox": True, "backoff_s": 0.1, "backoff_max_s": 1},
        "paths": {"credentials": str(agent["cred_path"]), "state_dir": str(base / "state")},
        # min_speed 0.5: a busy 2-core CI machine must not trigger a speed restart the test did not
        # ask for (the speed rule has its own test in test_media.py)
        "stream": {"display": "auto", "status_poll_s": 1, "min_speed": 0.5},  # up reserves a free one
        "chat": {"poll_s": 1, "quiet_poll_s": 1},
        "control": {"port": 0},
        "recovery": {"backoff_s": 0.5, "backoff_max_s": 2, "max_restarts_per_hour": 20},
    }))
    log = base / "up.log"
    mark = len(sb.requests())
    # the token only in the environment (as with `docker run -e`): `up` hands it to the controller
    # in a private file, so no process of the tree carries it (checked below, FFmpeg included)
    saved = json.loads(agent["cred_path"].read_text())
    agent["cred_path"].write_text(json.dumps(dict(saved, access_token="")))
    env = dict(os.environ, APPLIANCE_RUNTIME_DIR=str(runtime), APPLIANCE_WAIT_TIMEOUT="20",
               RETAKE_ACCESS_TOKEN=agent["token"])
    env.pop("RETAKE_ACCESS_TOKEN_FILE", None)
    with open(log, "ab") as output:
        up = subprocess.Popen([sys.executable, "-m", "appliance", "up", "--config", str(cfg)], env=env, cwd=REPO,
                              stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def tail() -> str:
        return "\n".join(log.read_text(errors="replace").splitlines()[-60:])

    try:
        try:
            wait_until(lambda: any(entry_name(r) == "agent/stream/chat/send" for r in sb.requests()[mark:]), 60,
                       "the opening chat message")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- appliance up log ---\n{tail()}") from None
        order = [entry_name(r) for r in sb.requests()[mark:]]
        wanted = ["agent/rtmp", "agent/stream/start", "RTMP publish", "agent/stream/status",
                  "agent/update-thumbnail", "agent/stream/chat/send"]
        firsts = [order.index(w) for w in wanted]
        assert firsts == sorted(firsts), order
        thumb = next(r for r in sb.requests()[mark:] if r["path"].endswith("update-thumbnail"))
        assert thumb["status"] == 200
        publish_at = next(entry_time(r) for r in sb.requests()[mark:] if entry_name(r) == "RTMP publish")

        # a viewer comment is answered within a few seconds
        sb.post_comment(text="hi from the test", username="tester", user_db_id=agent["user"])
        t0 = time.monotonic()
        wait_until(lambda: any("Welcome, tester" in c.text for c in agent["client"].comments(agent["user"])),
                   8, "a reply to the viewer")
        assert time.monotonic() - t0 < 6

        # speech into the sink while the encoder keeps running
        control = ControlClient.from_state(base / "state")
        # at least 2.5 s of the stream before speech, to check it was silent (a reply over
        # Socket.IO can come back within 0.1 s of going live, so waiting for it is no delay)
        time.sleep(max(1.0, publish_at + 2.5 - time.time()))
        speak_at = time.time()
        spoken = control.call("POST", "/say", {"text": "Hello viewers, this is the appliance speaking on stream.",
                                               "wait": True})  # blocking, as scripts may ask
        assert spoken["seconds"] > 1.0
        time.sleep(1.0)
        first_recording_len = time.time() - publish_at

        # ffmpeg killed by pid: the controller brings the stream back with a fresh key
        tree = descendants(up.pid)
        ffmpeg = named(tree, "ffmpeg")
        assert len(ffmpeg) == 1, tail()
        before = publishes(sb, mark)
        os.kill(ffmpeg[0], signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda: publishes(sb, mark) > before, 10, "a new RTMP publish after killing ffmpeg")
        assert time.monotonic() - t0 <= 10

        # Xvfb and PulseAudio killed by pid: supervisord restarts them and the stream resumes
        for program in ("Xvfb", "pulseaudio"):
            pids = named(descendants(up.pid), program)
            assert len(pids) == 1, f"{program}: {pids}"
            before = publishes(sb, mark)
            os.kill(pids[0], signal.SIGKILL)
            wait_until(lambda before=before: publishes(sb, mark) > before, 30,
                       f"the stream back after killing {program}")
            wait_until(lambda: agent["client"].stream_status().is_live, 15, f"live after killing {program}")

        all_children = {pid: start_time(pid) for pid in descendants(up.pid)}
        names = {pid: process_name(pid) for pid in all_children}
        assert "ffmpeg" in names.values(), names
        carriers = [names[pid] for pid in all_children if agent["token"].encode() in process_environ(pid)]
        assert not carriers, f"the token is in the environment of {carriers}"
        assert terminate(up, 60) == 0, tail()
    finally:
        if up.poll() is None:
            up.kill()
    log_text = log.read_text(errors="replace")
    assert agent["token"] not in log_text
    wait_all_ended(all_children, "left running")
    assert any(r["path"].endswith("stream/stop") for r in sb.requests()[mark:])

    # decode the first recording (before the kills): what viewers saw and heard
    recordings = wait_until(lambda: [r for r in sb.recordings() if r.get("size", 0) > 0], 10, "recordings")
    first = Path(recordings[0]["path"])  # oldest first: the stream before the first kill
    streams = {s["codec_type"]: s for s in ffprobe(first, "-show_streams")["streams"]}
    video, audio = streams["video"], streams["audio"]
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (1280, 720)
    num, den = map(int, video["avg_frame_rate"].split("/"))
    assert num / den == pytest.approx(30, abs=1.5)
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 44100 and audio["channels"] == 2
    frames = ffprobe(first, "-select_streams", "v", "-skip_frame", "nokey", "-show_entries",
                     "frame=pts_time", "-show_frames")["frames"]
    keys = [float(f["pts_time"]) for f in frames]
    gaps = [b - a for a, b in itertools.pairwise(keys)]
    assert len(keys) >= 3 and max(gaps) <= 2.0 + 1 / 30 + 0.001, keys
    assert sorted(gaps)[len(gaps) // 2] >= 1.5, f"keyframes too dense: {keys}"  # a GOP, not all-intra
    packets = ffprobe(first, "-select_streams", "a", "-show_entries", "packet=pts_time,duration_time",
                      "-show_packets")["packets"]
    times = [float(p["pts_time"]) for p in packets]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.1, "a gap in the audio track"
    levels = audio_levels(first, 0.25)
    offset = speak_at - publish_at
    speaking = [db for t, db in levels if offset + 0.3 <= t <= offset + spoken["seconds"] - 0.3]
    before_speech = [db for t, db in levels if 1.0 <= t <= offset - 0.5]
    assert speaking and max(speaking) > -35, f"speech not audible: {speaking}"
    assert before_speech and max(before_speech) < -60, f"not silent before speech: {before_speech}"
    assert first_recording_len > offset
