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

from .chat import ChatServices
from .config import Settings
from .control.api import ControlServer
from .control.commands import LiveCommands
from .control.events import EventBus
from .files import ensure_private_dir
from .live.lifecycle import Lifecycle
from .notify import Notifier, StreamWatch
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


def config_secrets(settings: Settings, environ: Any = None) -> list[str]:
    """Values of the environment variables the config names for keys: never in a prompt or a post."""
    environ = os.environ if environ is None else environ
    names = [settings.chat.llm.api_key_env, "RETAKE_ACCESS_TOKEN"]
    if settings.chat.webhook is not None:
        names += list(settings.chat.webhook.headers_env.values())
    return [environ[n] for n in names if environ.get(n)]


def reply_outputs(speaker: Any, content: Any, bus: EventBus) -> dict[str, Any]:
    """Where a reply may go besides chat (``chat.reply_routes``): the voice (off the chat's
    thread, with utterance events) and the caption line."""
    counter = iter(range(1, 1 << 62))

    def speak(text: str) -> None:
        utterance = next(counter)
        bus.publish("utterance_started", {"id": utterance, "text": text})
        try:
            speaker.say(text)
        finally:
            bus.publish("utterance_finished", {"id": utterance})

    outputs: dict[str, Any] = {"caption": lambda text: content.write(f"(caption) {text}")}
    if speaker is not None:
        outputs["voice"] = lambda text: threading.Thread(target=speak, args=(text,), name="reply-voice",
                                                         daemon=True).start()
    return outputs


def run_live(settings: Settings) -> int:
    from .media.audio import ensure_sink, pulse_available
    from .media.content import ContentLog
    from .media.display import capture_png
    from .media.encoder import Encoder
    from .scene.feeds import OverlayFolder
    from .voice import Speaker, make_voice

    state_dir = ensure_private_dir(settings.state_dir)
    store = StateStore(state_dir)
    content = ContentLog(settings.content_log(), settings.overlay.max_line_chars)
    speaker = None
    if settings.stream.audio_source == "pulse" and pulse_available():
        ensure_sink(settings.stream.sink, settings.stream.sample_rate)
        speaker = Speaker(make_voice(settings.voice), settings.stream.sink)
    encoder = Encoder(settings.stream)
    stop = threading.Event()
    bus = EventBus()
    notifier = Notifier(settings)
    bus.subscribe(StreamWatch(notifier, settings))
    chat = ChatServices(publish=bus.publish, outputs=reply_outputs(speaker, content, bus),
                        secrets=lambda: [server.token, *config_secrets(settings)],
                        viewers=lambda: lifecycle.metrics.viewers)
    lifecycle = Lifecycle(settings, client=RetakeClient(settings.retake), encoder=encoder,
                          capture=lambda: capture_png(settings.stream.display),
                          notifier=notifier, state=store, stop_event=stop,
                          content=content.write, progress=lambda line: print(line, flush=True),
                          media_identity=lambda: media_identity(settings), chat_services=chat,
                          on_state=lambda state, detail: bus.publish("state", {"state": state, "detail": detail}))
    commands = LiveCommands(lifecycle, speaker=speaker, content=content, encoder=encoder)
    server = ControlServer(commands, state_dir=state_dir, port=settings.control.port, bus=bus).start()
    overlays = OverlayFolder(settings.overlay_dir(), content.write).start()

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
        notifier.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
