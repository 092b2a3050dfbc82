"""Benchmark: what one browser watching the console costs the appliance, and whether the encoder
keeps real time meanwhile.

The real appliance (`appliance up`: supervisord, Xvfb, PulseAudio, the scene renderer, the
terminal, the controller and its FFmpeg) goes live on the local sandbox, with simulated viewers
chatting (the host brain answers them). Three windows of ``--seconds`` each, in one run:

  A   nobody watches
  B   a headless Chromium shows the console (login by the one-time URL; the page loads, then
      polls the preview at control.preview_fps, its state every 5 s, the terminal every 3 s,
      and holds the event stream open)
  A'  nobody watches again (the preview's grabber stops 15 s after the last frame asked for)

CPU is read from /proc for every process of the appliance's tree (utime+stime+cutime+cstime of
the processes alive at both ends of a window, so short-lived children such as tmux
capture-pane count through their parent); the browser, the sandbox and its nginx are outside
the tree. The console's cost = B - mean(A, A'), in % of one core; the encoder's speed is read
from /status every 2 s in each window (median and minimum). The page load is inside B.

    .venv/bin/python bench/console.py --seconds 60 --screenshots docs

Done when (issue 12): the cost < 5 % of one core and the encoder's speed >= 0.99.

Measured on the shared 2-core machine (2026-11-27, --seconds 60): tree 32.0 / 34.6 / 31.7 % of
a core in A / B / A'; the console's cost 2.8 % (preview FFmpeg 0.8, controller +0.8, Xvfb +0.1,
the rest the encoder's own variation); encoder speed 1.000 (median and minimum) throughout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.browser import chromium  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int | None:
    """utime + stime + cutime + cstime of ``pid`` (None when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def tree_ticks(root: int) -> dict[int, int]:
    from tests.support.tree import descendants
    out = {}
    for pid in {root, *descendants(root)}:
        ticks = cpu_ticks(pid)
        if ticks is not None:
            out[pid] = ticks
    return out


def window(app, seconds: float, start=None) -> tuple[float, list[float], dict[str, float]]:
    """(% of one core used by the tree, encoder speeds, % per process name) over ``seconds``;
    ``start()`` runs at its beginning (the browser's page load is inside the window). A process
    that appears during the window counts from zero."""
    from tests.support.tree import process_name
    speeds: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(2.0):
            try:
                speed = app.call("GET", "/status").get("speed")
            except Exception as exc:  # a sample missed while the appliance is busy
                print(f"sample: {exc}", file=sys.stderr)
                continue
            if isinstance(speed, (int, float)):
                speeds.append(float(speed))
    thread = threading.Thread(target=sample, daemon=True)
    before, t0 = tree_ticks(app.proc.pid), time.monotonic()
    thread.start()
    if start is not None:
        start()
    time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    after, elapsed = tree_ticks(app.proc.pid), time.monotonic() - t0
    stop.set()
    thread.join()
    by_name: dict[str, float] = {}
    total = 0
    for pid in after:
        used = after[pid] - before.get(pid, 0)
        total += used
        name = process_name(pid)
        try:
            if name == "ffmpeg" and b"image2pipe" in Path(f"/proc/{pid}/cmdline").read_bytes():
                name = "ffmpeg-preview"
        except OSError:
            pass
        by_name[name] = by_name.get(name, 0.0) + used / TICKS / elapsed * 100
    return total / TICKS / elapsed * 100, speeds, by_name


def open_console(app, user_data: Path):
    driver = chromium(user_data, "--window-size=1280,1100")
    url = re.search(r"(http://127\.0\.0\.1:\d+/console/login\?ticket=\S+)", app.cli("console")).group(1)
    driver.get(url)
    return driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each window")
    parser.add_argument("--screenshots", type=Path, help="save console.png and console-phone.png here")
    args = parser.parse_args(argv)
    from appliance.sandbox import Sandbox
    from tests.support.show import LiveAppliance
    from tests.support.tree import short_tmpdir

    base = short_tmpdir("bench-console-")
    results = {}
    try:
        with Sandbox(port=0, rtmp=True, viewer_interval=6) as sb, LiveAppliance(sb, base, name="ConsoleBench") as app:
            app.start()
            app.cli("terminal", "python3 -c \"import this\" | head -n 8")
            print(f"live on {app.display}; windows of {args.seconds:g} s: A (nobody), B (a browser), A' (nobody)",
                  flush=True)
            time.sleep(10)
            results["A"] = window(app, args.seconds)
            browser: list = []
            try:
                results["B"] = window(app, args.seconds,
                                      lambda: browser.append(open_console(app, Path(tempfile.mkdtemp(dir=base)))))
                driver = browser[0]
                if args.screenshots:  # after the measured window: speech on the page and on screen
                    app.call("POST", "/say",
                             {"text": "Welcome to the console. Everything you see here, viewers see too."})
                    time.sleep(2.5)
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    driver.save_screenshot(str(args.screenshots / "console.png"))
                    driver.set_window_size(390, 1600)
                    time.sleep(3)
                    driver.save_screenshot(str(args.screenshots / "console-phone.png"))
            finally:
                for driver in browser:
                    driver.quit()
            time.sleep(20)  # the preview's grabber stops 15 s after the last frame asked for
            results["A'"] = window(app, args.seconds)
            app.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{'window':<7} {'tree % of a core':>16} {'speed median':>12} {'speed min':>9}  top processes (% of a core)")
    for name, (cpu, speeds, by_name) in results.items():
        top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:5])
        print(f"{name:<7} {cpu:>16.1f} {statistics.median(speeds) if speeds else float('nan'):>12.3f} "
              f"{min(speeds) if speeds else float('nan'):>9.3f}  {top}")
    base_cpu = (results["A"][0] + results["A'"][0]) / 2
    cost = results["B"][0] - base_cpu
    b_speeds = results["B"][1]
    speed = statistics.median(b_speeds) if b_speeds else 0.0
    for name in ("ffmpeg", "ffmpeg-preview", "appliance", "Xvfb"):
        diff = results["B"][2].get(name, 0.0) - (results["A"][2].get(name, 0.0) + results["A'"][2].get(name, 0.0)) / 2
        print(f"  {name}: {diff:+.1f} % of a core while the browser watched")
    print(f"console cost: {cost:.1f} % of one core (B {results['B'][0]:.1f} - mean of A and A' {base_cpu:.1f}); "
          f"encoder speed while watched: median {speed:.3f}, min {min(b_speeds) if b_speeds else 0:.3f}")
    ok = cost < 5.0 and speed >= 0.99
    print(f"targets (cost < 5 % of a core, speed >= 0.99): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
