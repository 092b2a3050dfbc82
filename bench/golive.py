#!/usr/bin/env python3
"""Time from `appliance live` to the initial thumbnail uploaded, against the sandbox.

Each round runs, in alternating order:
  appliance  `python -m appliance live --config ...` as a child process; the time runs from
             the spawn to the sandbox's log entry for `update-thumbnail` (so it includes the
             interpreter start, config, credentials, verification and skill checks).
  reference  the skill document's sequence done naively, in this process: rtmp -> stream/start
             -> the reference FFmpeg command -> status polled every 3 s -> scrot -> upload.
Prints every run, the medians, the ratio appliance/reference and the controller's own CPU
seconds when its thumbnail went up (timings on shared machines are noisy: read the ratio, the
medians and the CPU, not one run).

    .venv/bin/python bench/golive.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.media.encoder import reference_command  # noqa: E402
from appliance.sandbox import Sandbox  # noqa: E402
from tests.support.media import start_pulseaudio, start_xvfb, stop_process  # noqa: E402  (shared with bench/encode.py)

WALLET = "11111111111111111111111111111111"


def need(*binaries: str) -> None:
    missing = [b for b in binaries if not shutil.which(b)]
    if missing:
        sys.exit(f"golive: missing {', '.join(missing)} (run scripts/setup.sh)")


def entry_time(entry: dict) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def thumbnail_after(sb: Sandbox, mark: int, timeout: float) -> dict | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for entry in sb.requests()[mark:]:
            if entry["path"].endswith("agent/update-thumbnail") and entry.get("status") == 200:
                return entry
        time.sleep(0.02)
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_appliance(sb: Sandbox, cfg: Path, timeout: float) -> tuple[float, float]:
    """Seconds from the spawn to the thumbnail, and the controller's CPU seconds by then."""
    mark = len(sb.requests())
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "live", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        entry = thumbnail_after(sb, mark, timeout)
        if entry is None:
            raise SystemExit("golive: the appliance uploaded no thumbnail in time")
        return entry_time(entry) - t0, cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_reference(sb: Sandbox, token: str, display: str, timeout: float) -> float:
    api = sb.base_url
    auth = {"Authorization": f"Bearer {token}"}
    mark = len(sb.requests())
    t0 = time.time()
    rtmp = requests.post(f"{api}/agent/rtmp", headers=auth, timeout=10).json()
    requests.post(f"{api}/agent/stream/start", headers=auth, timeout=10).raise_for_status()
    cmd = reference_command(display, f"{rtmp['url']}/{rtmp['key']}")
    ffmpeg = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while not requests.get(f"{api}/agent/stream/status", headers=auth, timeout=10).json()["is_live"]:
            if time.time() > deadline:
                raise SystemExit("golive: the reference sequence never went live")
            time.sleep(3)
        with tempfile.TemporaryDirectory() as tmp:
            shot = Path(tmp) / "thumbnail.png"
            subprocess.run(["scrot", "-o", str(shot)], env={**os.environ, "DISPLAY": display}, check=True)
            with shot.open("rb") as fh:
                requests.post(f"{api}/agent/update-thumbnail", headers=auth, timeout=10,
                              files={"image": ("thumbnail.png", fh, "image/png")}).raise_for_status()
        entry = thumbnail_after(sb, mark, 5)
        return (entry_time(entry) if entry else time.time()) - t0
    finally:
        requests.post(f"{api}/agent/stream/stop", headers=auth, timeout=10)
        ffmpeg.send_signal(signal.SIGTERM)
        ffmpeg.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="rounds (each: one appliance, one reference run)")
    parser.add_argument("--timeout", type=float, default=45.0)
    parser.add_argument("--audio", choices=["pulse", "silent"], default="pulse",
                        help="the appliance's audio: the PulseAudio sink monitor (default, as in the "
                             "product) or a silent track")
    args = parser.parse_args()
    need("Xvfb", "ffmpeg", "scrot", "nginx")
    display, xvfb, _ = start_xvfb()
    work = Path(tempfile.mkdtemp(prefix="golive-"))
    pulse = None
    if args.audio == "pulse":
        need("pulseaudio")
        os.environ["PULSE_SERVER"], pulse = start_pulseaudio(work / "pulse")
    try:
        with Sandbox(port=0, rtmp=True, viewer_interval=0) as sb:
            s = requests.Session()
            reg = s.post(f"{sb.base_url}/agent/register", timeout=10, json={
                "agent_name": "GoLiveBench", "agent_description": "benchmark", "image_url": "https://example.com/a.png",
                "wallet_address": WALLET, "ticker": "BENCH"}).json()
            auth = {"Authorization": f"Bearer {reg['access_token']}"}
            s.post(f"{sb.base_url}/agent/prepare-verify", headers=auth, timeout=10)
            s.post(f"{sb.base_url}/agent/verify", headers=auth, timeout=10,
                   json={"tweet_url": "https://x.com/bench/status/1234567890"}).raise_for_status()
            creds = work / "credentials.json"
            creds.write_text(__import__("json").dumps({
                "access_token": reg["access_token"], "agent_name": "GoLiveBench", "agent_id": reg["agent_id"],
                "userDbId": reg["userDbId"], "wallet_address": WALLET, "ticker": "BENCH",
                "token_address": "", "token_ticker": ""}))
            os.chmod(creds, 0o600)
            cfg = work / "appliance.yaml"
            cfg.write_text(yaml.safe_dump({
                "agent": {"name": "GoLiveBench", "description": "benchmark", "image_url": "https://example.com/a.png",
                          "wallet_address": WALLET, "ticker": "BENCH"},
                "retake": {"base_url": sb.base_url, "sandbox": True},
                "paths": {"credentials": str(creds), "state_dir": str(work / "state")},
                "stream": {"display": display, "audio_source": args.audio},
                "control": {"port": 0}}))
            app_times: list[float] = []
            app_cpu: list[float] = []
            ref_times: list[float] = []
            print(f"golive: {args.runs} rounds on display {display}, audio {args.audio}, sandbox {sb.base_url}")
            print(f"{'round':>5} {'appliance s':>12} {'reference s':>12} {'controller CPU s':>17}")
            for round_no in range(args.runs):
                order = ("app", "ref") if round_no % 2 == 0 else ("ref", "app")
                got: dict[str, float] = {}
                for which in order:
                    if which == "app":
                        got[which], got["cpu"] = run_appliance(sb, cfg, args.timeout)
                    else:
                        got[which] = run_reference(sb, reg["access_token"], display, args.timeout)
                    time.sleep(1.0)
                app_times.append(got["app"])
                app_cpu.append(got["cpu"])
                ref_times.append(got["ref"])
                print(f"{round_no + 1:>5} {got['app']:>12.2f} {got['ref']:>12.2f} {got['cpu']:>17.2f}", flush=True)
            app_med, ref_med = statistics.median(app_times), statistics.median(ref_times)
            print(f"median  appliance {app_med:.2f} s (worst {max(app_times):.2f} s)  reference {ref_med:.2f} s  "
                  f"ratio appliance/reference {app_med / ref_med:.2f}  "
                  f"controller CPU {statistics.median(app_cpu):.2f} s  (target: median < 1 s, every run < 1.5 s)")
            return 0 if app_med < 1.0 and max(app_times) < 1.5 else 1
    finally:
        for proc in (pulse, xvfb):
            if proc is not None:
                stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
