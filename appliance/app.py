"""The composition root of `appliance live`: wires the real parts together (client, encoder,
display capture, voice, content window log, state, notifications, the lifecycle and the
control API)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any

from .config import Settings
from .control.api import ControlServer
from .control.commands import LiveCommands
from .files import ensure_private_dir
from .live.lifecycle import Lifecycle
from .notify import Notifier
from .retake.client import RetakeClient
from .state import StateStore

log = logging.getLogger("appliance.live")


def _socket_identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def media_identity(settings: Settings) -> tuple[object, object]:
    """Which X server and PulseAudio daemon the encoder captures from: their sockets' identity
    changes when supervisord restarts either, and the encoder must then be restarted too."""
    from .media.audio import server_socket
    from .media.display import display_number
    pulse = server_socket()
    return (_socket_identity(f"/tmp/.X11-unix/X{display_number(settings.stream.display)}"),
            _socket_identity(str(pulse[1])) if pulse and pulse[0] == socket.AF_UNIX else None)


def run_live(settings: Settings) -> int:
    from .media.audio import ensure_sink, pulse_available
    from .media.content import ContentLog
    from .media.display import capture_png
    from .media.encoder import Encoder
    from .media.simulcast import Simulcast
    from .scene.feeds import OverlayFolder
    from .scene.show import epoch_since, start_show

    state_dir = ensure_private_dir(settings.state_dir)
    store = StateStore(state_dir)
    content = ContentLog(settings.content_log(), settings.overlay.max_line_chars)
    pulse = settings.stream.audio_source == "pulse" and pulse_available()
    if pulse:
        ensure_sink(settings.stream.sink, settings.stream.sample_rate)
    show = start_show(settings, pulse=pulse)  # scene, voice, captions (show.speak / show.caption)
    encoder = Encoder(settings.stream, simulcast=Simulcast(settings.simulcast) if settings.simulcast.outputs else None)
    stop = threading.Event()
    lifecycle = Lifecycle(settings, client=RetakeClient(settings.retake), encoder=encoder,
                          capture=lambda: capture_png(settings.stream.display),
                          notifier=Notifier(settings), state=store, stop_event=stop,
                          content=content.write, on_chat=show.on_event,
                          progress=lambda line: print(line, flush=True),
                          media_identity=lambda: media_identity(settings))
    show.follow(lambda m=lifecycle.metrics: {"viewers": m.viewers, "market_cap": m.market_cap,
                                             "live_since": epoch_since(m.live_since, lifecycle.clock) if m.live_since else None})
    commands = LiveCommands(lifecycle, speaker=show, content=content, encoder=encoder)
    server = ControlServer(commands, state_dir=state_dir, port=settings.control.port).start()
    overlays = OverlayFolder(settings.overlay_dir(), content.write, feed=show.scene.feed, state=settings.layout).start()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    content.write(f"{settings.agent.name} is getting ready to go live...")
    try:
        return lifecycle.run()
    finally:
        overlays.stop()
        server.close()
        show.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
