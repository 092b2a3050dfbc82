"""`appliance doctor`: is this host (or container) able to go live? One row per check."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .config import Settings
from .core.errors import ApplianceError, MediaError
from .core.proc import run_capture
from .media.display import X_SOCKET, display_number

Verdict = Literal["ok", "FAIL", "warn"]

BINARIES = {  # binary -> (Debian package, needed for)
    "Xvfb": ("xvfb", "the virtual display"),
    "openbox": ("openbox", "the window manager"),
    "xterm": ("xterm", "the content window"),
    "pulseaudio": ("pulseaudio", "the sound sink"),
    "pactl": ("pulseaudio-utils", "sink set-up"),
    "paplay": ("pulseaudio-utils", "voice into the sink"),
    "ffmpeg": ("ffmpeg", "the encoder"),
    "ffprobe": ("ffmpeg", "media checks"),
    "espeak-ng": ("espeak-ng", "the offline voice"),
    "supervisord": ("supervisor (or the venv's supervisor)", "the process tree"),
}
OPTIONAL = {"nginx": ("nginx libnginx-mod-rtmp", "the sandbox's RTMP ingest"),
            "scrot": ("scrot", "thumbnails (without it FFmpeg's x11grab takes them; the image has no scrot)")}


@dataclass
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


def _run(argv: list[str], timeout: float = 10.0) -> tuple[int, str]:
    """(exit status, stdout) of a tool, run the one way tools are run (media.tools); a tool
    that cannot start or hangs is (-1, why)."""
    try:
        result = run_capture(argv, timeout=timeout)
    except MediaError as exc:
        return -1, exc.message
    return result.returncode, (result.stdout or b"").decode("utf-8", "replace")


def check_binaries(which: Callable[[str], str | None] = shutil.which) -> list[Check]:
    rows = []
    for binary, (package, purpose) in BINARIES.items():
        path = which(binary)
        rows.append(Check(f"binary {binary}", "ok" if path else "FAIL", path or f"missing ({purpose})",
                          "" if path else f"apt-get install {package}"))
    for binary, (package, purpose) in OPTIONAL.items():
        path = which(binary)
        rows.append(Check(f"binary {binary}", "ok" if path else "warn", path or f"missing ({purpose})",
                          "" if path else f"apt-get install {package}"))
    return rows


def check_ffmpeg() -> list[Check]:
    if not shutil.which("ffmpeg"):
        return []
    encoders = _run(["ffmpeg", "-hide_banner", "-encoders"])[1]
    devices = _run(["ffmpeg", "-hide_banner", "-devices"])[1]
    rows = []
    for name, text, what in (("libx264", encoders, "encoder"), ("aac", encoders, "encoder"),
                             ("x11grab", devices, "input device"), ("pulse", devices, "input device")):
        ok = f" {name} " in text
        rows.append(Check(f"ffmpeg {what} {name}", "ok" if ok else "FAIL", "present" if ok else "missing",
                          "" if ok else "install Debian's ffmpeg (it has all four)"))
    return rows


def check_display(display: str) -> Check:
    if not shutil.which("xdpyinfo"):
        ok = Path(X_SOCKET.format(display_number(display))).exists()
        return Check(f"display {display}", "ok" if ok else "FAIL", "socket present" if ok else "no X server",
                     "" if ok else "start the process tree: appliance up")
    code, out = _run(["xdpyinfo", "-display", display], timeout=5)
    if code == 0:
        dims = next((line.split()[1] for line in out.splitlines() if "dimensions:" in line), "?")
        return Check(f"display {display}", "ok", f"answers, {dims}")
    return Check(f"display {display}", "FAIL", "does not answer (or refuses a client without its cookie)",
                 "start the process tree (appliance up); its display admits only XAUTHORITY=<runtime dir>/Xauthority")


def check_sink(sink: str) -> Check:
    if not shutil.which("pactl"):
        return Check(f"sink {sink}", "FAIL", "pactl missing", "apt-get install pulseaudio-utils")
    code, out = _run(["pactl", "list", "short", "sinks"], timeout=5)
    if code != 0:
        return Check(f"sink {sink}", "FAIL", "PulseAudio does not answer",
                     "start the process tree (appliance up) or set stream.audio_source: silent")
    if any(line.split("\t")[1:2] == [sink] for line in out.splitlines()):
        return Check(f"sink {sink}", "ok", "exists")
    return Check(f"sink {sink}", "FAIL", "no such sink", f"pactl load-module module-null-sink sink_name={sink}")


def check_api(settings: Settings) -> list[Check]:
    from .retake.client import RetakeClient
    from .retake.credentials import resolve_credentials
    rows = []
    try:
        found = resolve_credentials(settings)
    except ApplianceError as exc:
        return [Check("credentials", "FAIL", exc.message, exc.fix or "")]
    path, token = found.path, found.token
    if not token:
        rows.append(Check("credentials", "warn", found.describe(), "appliance register"))
    elif found.saved is None:
        rows.append(Check("credentials", "ok", found.describe()))
    else:
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
        rows.append(Check("credentials", "ok" if mode == 0o600 else "FAIL",
                          f"{found.describe()}, mode {mode:o}",
                          "" if mode == 0o600 else f"chmod 600 {path}"))
    client = RetakeClient(settings.retake, token)
    try:
        if token:
            verified = client.verification_status().verified
            rows.append(Check("api", "ok", f"{settings.retake.base_url} answers; verified={verified}"))
            if not verified:
                rows.append(Check("verification", "warn", "not verified", "appliance verify"))
        else:
            client.live_users()
            rows.append(Check("api", "ok", f"{settings.retake.base_url} answers"))
    except ApplianceError as exc:
        rows.append(Check("api", "FAIL", exc.message, exc.fix or ""))
    return rows


def run_doctor(settings: Settings | None, config_path: str, *, out: Callable[[str], None] = print) -> int:
    rows = check_binaries() + check_ffmpeg()
    if settings is None:
        rows.append(Check("config", "FAIL", f"{config_path} not found", "copy config.example.yaml there"))
    else:
        rows.append(Check("config", "ok", config_path))
        rows.append(check_display(os.environ.get("DISPLAY") or settings.stream.display))
        if settings.stream.audio_source == "pulse":
            rows.append(check_sink(settings.stream.sink))
        rows += check_api(settings)
    width = max(len(r.name) for r in rows)
    for r in rows:
        out(f"{r.verdict:<4}  {r.name:<{width}}  {r.detail}" + (f"  -> fix: {r.fix}" if r.fix else ""))
    failed = sum(r.verdict == "FAIL" for r in rows)
    out(f"doctor: {failed} of {len(rows)} checks failed" if failed else f"doctor: all {len(rows)} checks ok")
    return 1 if failed else 0
