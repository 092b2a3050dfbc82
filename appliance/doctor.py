"""`appliance doctor`: is this host (or container) able to go live? One row per check.

It tells the truth before and after `appliance up`. Before (no tree runs with this config's
state): what can be checked is — programs, fonts, FFmpeg's encoders, credentials, the API, the
configured chat brain (reachable, key accepted, the model answers), the pinned display and
control port free — and the display and the sound sink, which `up` starts, are marked so
(verdict ``up``), not failed. After (``<state>/tree.json`` names a live tree): the tree's own
display (with its X cookie) and sink (on its PulseAudio socket) must answer.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from .chat.brains.settings import (
    CommandBrainConfig,
    ExternalBrainConfig,
    HostBrainConfig,
    LlmBrainConfig,
    WebhookBrainConfig,
)
from .config import Settings
from .core.errors import ApplianceError, MediaError
from .core.files import RuntimeLayout
from .core.proc import run_capture
from .media.display import X_SOCKET, display_number

if TYPE_CHECKING:
    from .control.where import Where

Verdict = Literal["ok", "FAIL", "warn", "up"]  # up: started by `appliance up`, not running now
STARTED_BY_UP = "started by `appliance up` (not running now)"
BRAIN_TIMEOUT_S = 15.0
# the families the scene renderer and the content window draw with (overlays/*.yaml default to
# Noto Sans; CJK and emoji are pango's per-character fallbacks; xterm asks for Monospace)
FONTS = {"Noto Sans": "fonts-noto-core", "Noto Sans CJK SC": "fonts-noto-cjk",
         "Noto Color Emoji": "fonts-noto-color-emoji", "Monospace": "fonts-dejavu-core"}

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


def _run(argv: list[str], timeout: float = 10.0, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(exit status, stdout) of a tool, run the one way tools are run (core.proc); a tool that
    cannot start or hangs is (-1, why). ``env``: variables set on top of the child's environment."""
    try:
        result = run_capture(argv, timeout=timeout, extra_env=env)
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


def resolved_font(family: str) -> str:
    """The family fontconfig (through pango, as the scene renderer draws) gives for ``family``."""
    import cairocffi
    import pangocairocffi
    import pangocffi
    surface = cairocffi.ImageSurface(cairocffi.FORMAT_ARGB32, 4, 4)
    context = pangocairocffi.create_context(cairocffi.Context(surface))
    wanted = pangocffi.FontDescription()
    wanted.family = family
    wanted.size = pangocffi.units_from_double(12)
    font = context.load_font(wanted)
    if font is None:
        return ""
    described = pangocffi.pango.pango_font_describe(font.pointer)
    try:
        return str(pangocffi.ffi.string(pangocffi.pango.pango_font_description_get_family(described)).decode())
    finally:
        pangocffi.pango.pango_font_description_free(described)


def check_fonts(resolve: Callable[[str], str] = resolved_font) -> list[Check]:
    rows = []
    for family, package in FONTS.items():
        try:
            got = resolve(family)
        except (OSError, ImportError) as exc:  # pango or cairo missing
            return [Check("fonts", "FAIL", f"cannot load pango/cairo ({exc})",
                          "apt-get install libcairo2 libpango-1.0-0 libpangocairo-1.0-0")]
        generic = family == "Monospace"
        ok = bool(got) if generic else got.lower() == family.lower()
        detail = (got if generic else "present") if ok else f"missing (falls back to {got or 'nothing'})"
        rows.append(Check(f"font {family}", "ok" if ok else "FAIL", detail, "" if ok else f"apt-get install {package}"))
    return rows


def check_display(display: str, env: Mapping[str, str] | None = None) -> Check:
    if not shutil.which("xdpyinfo"):
        ok = Path(X_SOCKET.format(display_number(display))).exists()
        return Check(f"display {display}", "ok" if ok else "FAIL", "socket present" if ok else "no X server",
                     "" if ok else "start the process tree: appliance up")
    code, out = _run(["xdpyinfo", "-display", display], timeout=5, env=env)
    if code == 0:
        dims = next((line.split()[1] for line in out.splitlines() if "dimensions:" in line), "?")
        return Check(f"display {display}", "ok", f"answers, {dims}")
    return Check(f"display {display}", "FAIL", "does not answer (or refuses a client without its cookie)",
                 "start the process tree (appliance up); its display admits only XAUTHORITY=<runtime dir>/Xauthority")


def check_sink(sink: str, env: Mapping[str, str] | None = None) -> Check:
    if not shutil.which("pactl"):
        return Check(f"sink {sink}", "FAIL", "pactl missing", "apt-get install pulseaudio-utils")
    code, out = _run(["pactl", "list", "short", "sinks"], timeout=5, env=env)
    if code != 0:
        return Check(f"sink {sink}", "FAIL", "PulseAudio does not answer",
                     "start the process tree (appliance up) or set stream.audio_source: silent")
    if any(line.split("\t")[1:2] == [sink] for line in out.splitlines()):
        return Check(f"sink {sink}", "ok", "exists")
    return Check(f"sink {sink}", "FAIL", "no such sink", f"pactl load-module module-null-sink sink_name={sink}")


def running_tree(settings: Settings) -> Where | None:
    """Where the tree `appliance up` runs with this state is (its display, its runtime folder:
    :mod:`appliance.control.where`), when its /health answers; None before `up` (or after it)."""
    from .control.probe import probe
    from .control.where import find
    try:
        where = find(settings.state_dir)
        alive, _ = probe("health", settings.state_dir)
    except ApplianceError:
        return None
    return where if alive else None


def check_tree(settings: Settings, tree: Where | None) -> list[Check]:
    """Display and sink: the running tree's, through its cookie and socket; before `up`, marked
    as started by it."""
    sink = settings.stream.sink if settings.stream.audio_source == "pulse" else None
    if tree is None or tree.held or not tree.display:
        why = STARTED_BY_UP if tree is None else "started by `appliance up` (it is holding: see `appliance status`)"
        rows = [Check("display", "up", why)]
        return rows + ([Check(f"sink {sink}", "up", why)] if sink else [])
    runtime = RuntimeLayout(Path(str(tree.data.get("runtime_dir") or "/nonexistent")))
    env = {"XAUTHORITY": str(runtime.xauthority), "PULSE_SERVER": f"unix:{runtime.pulse_socket}"}
    rows = [check_display(tree.display, env)]
    return rows + ([check_sink(sink, env)] if sink else [])


def check_ports(settings: Settings) -> list[Check]:
    """Before `up`: a pinned display or control port must be free (unpinned ones are chosen then)."""
    from .media.display import display_taken
    from .up.place import AUTO_DISPLAY, port_taken
    rows = []
    if settings.stream.display != AUTO_DISPLAY:
        taken = display_taken(display_number(settings.stream.display))
        rows.append(Check(f"display {settings.stream.display} free", "FAIL" if taken else "ok",
                          "taken by another X server" if taken else "free (pinned by stream.display)",
                          "set stream.display: auto, or stop what holds it" if taken else ""))
    if settings.control.port:
        taken = port_taken(settings.control.port)
        rows.append(Check(f"control port {settings.control.port} free", "FAIL" if taken else "ok",
                          "taken by another process" if taken else "free (pinned by control.port)",
                          "set control.port: 0, or stop what holds it" if taken else ""))
    return rows


def check_brain(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Check]:
    """The chat brain ``chat.brain.engine`` names: the llm one is asked for one short completion
    (reachable, key accepted, the model answers), a webhook's host must accept a connection, a
    command must exist; host and external reach nothing."""
    brain = settings.chat.brain
    environ = os.environ if environ is None else environ
    if isinstance(brain, HostBrainConfig):
        return [Check("brain host", "ok", "offline, nothing to reach")]
    if isinstance(brain, ExternalBrainConfig):
        return [Check("brain external", "ok", "replies come from POST /reply (the host brain covers)")]
    if isinstance(brain, CommandBrainConfig):
        program = brain.argv[0]
        found = shutil.which(program)
        return [Check("brain command", "ok" if found else "FAIL", found or f"{program} not found",
                      "" if found else "fix chat.brain.argv[0]")]
    if isinstance(brain, WebhookBrainConfig):
        url = urlsplit(brain.url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname or "", port), timeout=5).close()
        except OSError as exc:
            return [Check("brain webhook", "FAIL", f"{url.hostname}:{port} does not accept a connection ({exc})",
                          "check chat.brain.url and that the service runs")]
        return [Check("brain webhook", "ok", f"{url.hostname}:{port} accepts connections (nothing was posted)")]
    return check_llm(brain, environ)


def check_llm(cfg: LlmBrainConfig, environ: Mapping[str, str]) -> list[Check]:
    """One short completion from the llm brain's endpoint: reachable, key accepted, model known."""
    from .chat.brains.host import HostBrain
    from .chat.brains.http import BrainHttpError
    from .chat.brains.llm import LlmBrain
    brain = LlmBrain(cfg, fallback=HostBrain(), persona="", environ=environ)
    where = f"{cfg.base_url} ({cfg.model})"
    key_note = "" if environ.get(cfg.api_key_env, "").strip() else f"; no key in ${cfg.api_key_env}"
    try:
        answer = brain.check(BRAIN_TIMEOUT_S)
    except BrainHttpError as exc:
        return [Check("brain llm", "FAIL", f"{where} does not answer ({exc}){key_note}",
                      "check chat.brain.base_url and that the server runs")]
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError) as exc:
        text = str(exc)
        if text in ("HTTP 401", "HTTP 403"):
            fix = f"set a valid key in ${cfg.api_key_env} (the environment of `appliance up`)"
            return [Check("brain llm", "FAIL", f"{where} refused the key ({text}){key_note}", fix)]
        if text == "HTTP 404":
            return [Check("brain llm", "FAIL", f"{where}: not found (HTTP 404): wrong base_url or model",
                          "check chat.brain.base_url (ends in /v1) and chat.brain.model")]
        return [Check("brain llm", "FAIL", f"{where}: {type(exc).__name__}: {text[:120]}{key_note}",
                      "check chat.brain.base_url and chat.brain.model")]
    finally:
        brain.close()
    from .core.sanitize import clean_text
    return [Check("brain llm", "ok", f"{where} answered: {clean_text(answer, 40)!r}")]


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
    rows = check_binaries() + check_fonts() + check_ffmpeg()
    if settings is None:
        rows.append(Check("config", "FAIL", f"{config_path} not found", "copy config.example.yaml there"))
    else:
        tree = running_tree(settings)
        running = "" if tree is None else f" (a tree runs: pid {tree.data.get('pid')})"
        rows.append(Check("config", "ok", config_path + running))
        rows += check_tree(settings, tree)
        if tree is None:
            rows += check_ports(settings)
        rows += check_api(settings)
        rows += check_brain(settings)
    width = max(len(r.name) for r in rows)
    for r in rows:
        out(f"{r.verdict:<4}  {r.name:<{width}}  {r.detail}" + (f"  -> fix: {r.fix}" if r.fix else ""))
    failed, line = summary(rows)
    out(line)
    return 1 if failed else 0


def summary(rows: list[Check]) -> tuple[int, str]:
    """(failures, the closing line); rows `up` will start are neither failures nor passes."""
    failed = sum(r.verdict == "FAIL" for r in rows)
    later = sum(r.verdict == "up" for r in rows)
    note = f" ({later} started by `appliance up`)" if later else ""
    if failed:
        return failed, f"doctor: {failed} of {len(rows) - later} checks failed{note}"
    return 0, f"doctor: all {len(rows) - later} checks ok{note}"
