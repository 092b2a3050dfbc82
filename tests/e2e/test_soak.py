"""The soak's short form (CI): bench/soak.py for two minutes against the built image (compose's
sandbox profile) with the encoder killed once, and its report checked for sense: memory sampled
for the tree, the flash/beep sync pattern found and paired in each recording, our viewers
answered exactly once, thumbnails on schedule, the kill recovered. The 2-hour figure is
`bench/soak.py --minutes 120 --json soak.json` (docs/benchmarks.md, "Soak")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.compose import compose_available
from tests.support.media import require
from tests.support.tree import IMAGE_TAG, REPO, BuiltImage, appliance_image, docker_client

__all__ = ["appliance_image", "docker_client"]  # fixtures for pytest
SHELL_PANE = ("bash", "nologin")  # the terminal's shell: issue 17.2's respawn loop is priv's test


@pytest.mark.container
@pytest.mark.timeout(900)
def test_a_short_soak_of_the_image_reports_sense(appliance_image: BuiltImage, tmp_path: Path) -> None:
    if why := compose_available():
        pytest.skip(why)
    require("ffmpeg", "ffprobe")
    out = tmp_path / "soak.json"
    result = subprocess.run([sys.executable, "bench/soak.py", "--minutes", "2", "--kill-every-minutes", "1",
                             "--say-every-s", "20", "--scene-every-s", "45", "--comment-every-s", "15",
                             "--sample-every-s", "10", "--min-speed", "0.5", "--image", IMAGE_TAG,
                             "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=850)
    text = result.stdout + result.stderr
    assert result.returncode == 0 and out.exists(), text[-4000:]
    r = json.loads(out.read_text())
    print(result.stdout[-3000:])

    tree = r["tree_rss"]
    assert tree["samples"] >= 8 and 100 < tree["mb_end"] < 2000, tree
    assert {"Xvfb", "pulseaudio", "controller (appliance live)", "ffmpeg (encoder)"} <= set(r["rss"]), r["rss"]

    recordings = r["av_sync"]["recordings"]
    assert len(recordings) >= 2, recordings  # the kill ends one recording, the recovery starts another
    assert sum(f["sync_pairs"] for f in recordings) >= 6, recordings  # ~12 flashes, minus the recovery
    for f in recordings:
        if f["sync_pairs"] >= 3:  # the measurement itself is sane: a steady offset under a second
            assert abs(f["offset_ms_median"]) < 1000 and f["offset_ms_spread"] < 250, f
    assert r["frames"]["frames"] > 2000, r["frames"]

    chat = r["chat"]
    assert chat["posted"] >= 5 and not chat["answered_twice"] and not chat["never_answered"], chat

    thumbs, restarts = r["thumbnails"], r["restarts"]
    assert restarts["encoder_kills"] == 1
    assert 1 + restarts["encoder_kills"] <= restarts["stream_starts"] <= 3, restarts
    assert thumbs["uploaded"] >= thumbs["expected_at_least"] >= restarts["stream_starts"], thumbs
    assert thumbs["late"] == 0, thumbs
    unasked = {k: v for k, v in restarts["helpers_restarted_unasked"].items() if k not in SHELL_PANE}
    assert not unasked, restarts
    assert r["actions"].get("say", 0) >= 4 and r["actions"].get("scene brb", 0) >= 2, r["actions"]
    assert not r["errors"], r["errors"]
    assert "| **the tree** (not the sandbox) |" in result.stdout
