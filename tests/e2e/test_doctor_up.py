"""`appliance doctor` after `appliance up`: the running tree's own display (through its X
cookie) and sink (on its PulseAudio socket) answer, so every row passes; nothing is left as
"started by up"."""

from __future__ import annotations

import shutil

import pytest

from tests.support.media import require
from tests.support.sandbox import requires_nginx
from tests.support.show import LiveAppliance
from tests.support.tree import short_tmpdir


@requires_nginx
@pytest.mark.timeout(180)
def test_doctor_after_up_checks_the_trees_display_and_sink(rtmp_sandbox) -> None:
    require("Xvfb", "pulseaudio", "ffmpeg", "xdpyinfo", "pactl")
    base = short_tmpdir("apdoc-")
    try:
        with LiveAppliance(rtmp_sandbox, base, name="DocUp") as app:
            app.start()
            out = app.cli("doctor")  # raises unless it exits 0
            rows = {line.split()[1]: line for line in out.splitlines() if len(line.split()) > 2}
            display = next(line for line in out.splitlines() if f"display {app.display}" in line)
            assert display.startswith("ok ") and "answers" in display, out
            assert rows["sink"].startswith("ok ") and "exists" in rows["sink"], out
            assert "started by `appliance up`" not in out and "a tree runs" in out, out
            assert app.stop() == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)
