"""The soak's sync pattern, run INSIDE the appliance's container (bench/soak.py copies it in and
starts it with `podman exec`): every PERIOD seconds, on the wall clock's multiples, a white
square flashes in the display's bottom-right corner (an override-redirect X window, mapped for
FLASH_S) and a 3 kHz beep (BEEP_S) goes into the tree's sound sink at the same moment.

The beep is written into a `pacat` stream that carries silence the rest of the time, so its
delay to the sink is the stream's buffer, the same for every beep; the flash reaches the stream
at x11grab's next frame. The offset between the two in the recording is then constant up to a
frame's quantisation, and any change of it over hours is the encoder's audio/video drift.

Finds the tree (its display, its runtime folder with the X cookie and the
PulseAudio socket) from the config the appliance runs with (display, sink, rate) and its
runtime folder (the only ``/tmp/appliance-*`` with an X cookie: `appliance rehearse` writes no
tree.json). Stops by itself after ``--seconds``; standard library + xcffib and PyYAML (in the
image's venv).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import xcffib
import xcffib.xproto
import yaml

SIZE = 96          # the flashing square, in the bottom-right corner
FLASH_S = 0.3
BEEP_S = 0.15
BEEP_HZ = 3000
CHUNK_S = 0.01     # pacat is fed 10 ms at a time (a write blocks while its buffer is full)


def tree_info(config_path: Path, tmp: Path) -> tuple[str, Path, str, int]:
    stream = (yaml.safe_load(config_path.read_text()) or {}).get("stream") or {}
    runtimes = sorted(p.parent for p in tmp.glob("appliance-*/Xauthority"))
    if len(runtimes) != 1:
        raise SystemExit(f"soak_sync: expected one tree's runtime folder in {tmp}, found {runtimes}")
    return str(stream["display"]), runtimes[0], stream.get("sink", "stream"), int(stream.get("sample_rate", 44100))


class Flash:
    def __init__(self, display: str, xauthority: Path) -> None:
        os.environ["XAUTHORITY"] = str(xauthority)
        self.conn = xcffib.connect(display=display)
        self.core: Any = getattr(self.conn, "core")  # noqa: B009 (xcffib's protocol object, untyped)
        screen = self.conn.get_setup().roots[0]
        self.window = self.conn.generate_id()
        x, y = screen.width_in_pixels - SIZE, screen.height_in_pixels - SIZE
        self.core.CreateWindow(screen.root_depth, self.window, screen.root, x, y, SIZE, SIZE, 0,
                                    xcffib.xproto.WindowClass.InputOutput, screen.root_visual,
                                    xcffib.xproto.CW.BackPixel | xcffib.xproto.CW.OverrideRedirect,
                                    [screen.white_pixel, 1])
        self.conn.flush()

    def raise_(self) -> None:
        self.core.ConfigureWindow(self.window, xcffib.xproto.ConfigWindow.StackMode,
                                       [xcffib.xproto.StackMode.Above])
        self.conn.flush()

    def show(self, on: bool) -> None:
        if on:
            self.core.MapWindow(self.window)
            self.core.ConfigureWindow(self.window, xcffib.xproto.ConfigWindow.StackMode,
                                           [xcffib.xproto.StackMode.Above])
        else:
            self.core.UnmapWindow(self.window)
        self.core.GetInputFocus().reply()  # a round trip: the server has done it
        self.conn.flush()


class Beeper:
    """A pacat stream of silence into the sink; :meth:`beep` puts the tone in the next chunk."""

    def __init__(self, pulse_socket: Path, sink: str, rate: int) -> None:
        self.rate = rate
        self.proc = subprocess.Popen(["pacat", f"--server=unix:{pulse_socket}", f"--device={sink}", "--raw",
                                      "--format=s16le", f"--rate={rate}", "--channels=2", "--latency-msec=30",
                                      "--client-name=soak-sync", "--stream-name=sync"], stdin=subprocess.PIPE)
        frames = int(rate * CHUNK_S)
        self.silence = b"\0\0\0\0" * frames
        tone = [int(12000 * math.sin(2 * math.pi * BEEP_HZ * i / rate)) for i in range(int(rate * BEEP_S))]
        self.tone = b"".join(struct.pack("<hh", v, v) for v in tone)
        self.chunk_bytes = len(self.silence)
        self.pending = threading.Event()
        self.stop = threading.Event()
        threading.Thread(target=self._feed, daemon=True).start()

    def _feed(self) -> None:
        assert self.proc.stdin is not None
        queued = b""
        while not self.stop.is_set():
            if self.pending.is_set():
                self.pending.clear()
                queued = self.tone
            chunk, queued = queued[:self.chunk_bytes], queued[self.chunk_bytes:]
            self.proc.stdin.write(chunk + self.silence[len(chunk):])
            self.proc.stdin.flush()

    def beep(self) -> None:
        self.pending.set()

    def close(self) -> None:
        self.stop.set()
        self.proc.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the config the appliance runs with")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"), help="where its runtime folder is")
    parser.add_argument("--period", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, required=True, help="stop after this long")
    args = parser.parse_args()
    display, runtime, sink, rate = tree_info(args.config, args.tmp)
    flash = Flash(display, runtime / "Xauthority")
    beeper = Beeper(runtime / "pulse" / "native", sink, rate)
    end = time.time() + args.seconds
    count = 0
    try:
        while True:
            due = (math.floor(time.time() / args.period) + 1) * args.period
            if due > end:
                break
            time.sleep(max(0.0, due - time.time()))
            beeper.beep()
            flash.show(True)
            count += 1
            for _ in range(int(FLASH_S / 0.05)):  # a window mapped meanwhile (a scene switch) must not hide it
                time.sleep(0.05)
                flash.raise_()
            flash.show(False)
    finally:
        beeper.close()
        print(json.dumps({"flashes": count}), flush=True)


if __name__ == "__main__":
    main()
