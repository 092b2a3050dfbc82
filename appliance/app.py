"""The composition root of `appliance live`: wires the real parts together (client, encoder,
display capture, the show, the content window, state, notifications and what watches the bus
for them, the builder's direction, the scenes that follow the stream, the heartbeat, the
lifecycle and the control API)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .chat import ChatServices
from .config import Settings
from .control.events import Event, EventBus
from .core.files import ensure_private_dir
from .core.outgoing import OutgoingFilter, Secrets
from .core.secrets import SecretStore
from .core.store import StateStore
from .live.direction import Directions
from .live.heartbeat import Heartbeat
from .live.lifecycle import Lifecycle
from .live.notify import Notifier
from .live.parts import Parts, chat_factory
from .live.scenes import SceneFollow, Stage
from .live.watch import StreamWatch
from .retake.client import RetakeClient

if TYPE_CHECKING:
    from .control.api import ControlServer
    from .live.show import Show

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
    from .media.display import X_SOCKET, display_number
    pulse = server_socket()
    return (_socket_identity(X_SOCKET.format(display_number(settings.stream.display))),
            _socket_identity(str(pulse[1])) if pulse and pulse[0] == socket.AF_UNIX else None)


def reply_outputs(show: Show) -> dict[str, Callable[[str, str], None]]:
    """Where a reply may go besides chat (``chat.reply_routes``): the show's speech queue
    (``show.speak``: never blocks; ``priority`` is reply or proactive) and its caption bar."""
    def caption(text: str, priority: str = "reply") -> None:
        show.caption(text)

    def voice(text: str, priority: str = "reply") -> None:
        show.speak(text, priority=priority)

    outputs: dict[str, Callable[[str, str], None]] = {"caption": caption}
    if show.voice is not None:
        outputs["voice"] = voice
    return outputs


def connect_show(bus: EventBus, show: Show) -> Callable[[], None]:
    """Every event of the bus reaches ``show.on_event``: the voice's (captions, the avatar's
    mouth, music ducking), the chat's (chat panel, marked line, own lines, stats, reactions,
    moods). A reply that did not go to chat (voice or caption only) is not a chat line: it only
    ends the marked line."""
    def deliver(event: Event) -> None:
        if event.kind == "reply" and "chat" not in (event.data.get("routes") or ["chat"]):
            show.on_event("answering", {"ids": []})
            return
        show.on_event(event.kind, dict(event.data))
    return bus.subscribe(deliver)


def content_lines(write: Callable[[str], object], settings: Settings) -> Callable[[Event], None]:
    """The content window's lines from the event bus: what viewers say (chat, tips, trades,
    follows), what the agent sends to chat, and the moment it is live."""
    def deliver(event: Event) -> None:
        data = event.data
        if event.kind in ("chat", "tip", "trade", "follow"):
            write(f"{(data.get('user') or {}).get('name', '')}: {data.get('text', '')}")
        elif event.kind == "reply" and "chat" in (data.get("routes") or ["chat"]):
            write(f"{settings.agent.name} > {data.get('text', '')}")
        elif event.kind == "state" and data.get("state") == "live" and str(data.get("detail")).startswith("stream #"):
            write(f"LIVE at {settings.stream_url()} — say hi in chat")
    return deliver


class Starting:
    """``make()`` run on a thread of its own; its failure stops the run (``stop``) and is raised
    again by :meth:`result`. For a part the way to the initial thumbnail does not need."""

    def __init__(self, make: Callable[[], Any], stop: threading.Event) -> None:
        self.made: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.made = make()
            except BaseException as exc:
                self.error = exc
                stop.set()
        self._thread = threading.Thread(target=run, name="starting", daemon=True)
        self._thread.start()

    def result(self, timeout: float = 60.0) -> Any:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.made

    def close(self) -> None:
        self._thread.join(30)
        if self.made is not None:
            self.made.close()


def run_live(settings: Settings) -> int:
    from .live.show import epoch_since, start_show
    from .media.audio import ensure_sink, keep_sink_clock, pulse_available
    from .media.content import ContentLog
    from .media.display import capture_png
    from .media.encoder import Encoder
    from .media.preview import Preview
    from .media.simulcast import Simulcast
    from .media.terminal import PaneGuard, Terminal
    from .scene.feeds import OverlayFolder

    state_dir = ensure_private_dir(settings.state_dir)
    # every secret the config names, read once (the tree's store under `appliance up`); nothing
    # here is ever put in a child's environment (core/proc's allow-list)
    held = SecretStore.load(settings.secret_refs())
    store = StateStore(state_dir)
    content = ContentLog(settings.content_log(), settings.overlay.max_line_chars)
    pulse = settings.stream.audio_source == "pulse" and pulse_available()
    sink_clock = None
    if pulse:
        ensure_sink(settings.stream.sink, settings.stream.sample_rate)
        sink_clock = keep_sink_clock(settings.stream.sink)  # the encoder's audio opens at once
    bus = EventBus()
    # scene, voice, captions, avatar (show.voice / show.caption); the voice publishes its
    # utterance_* and sentence_* events on the bus, to which the show subscribes
    show = start_show(settings, pulse=pulse, publish=bus.publish)
    connect_show(bus, show)
    encoder = Encoder(settings.stream, simulcast=Simulcast(settings.simulcast, secrets=held)
                      if settings.simulcast.outputs else None)
    stop = threading.Event()
    # the builder's direction: the topic on screen, the brain's context; from the CLI, the console,
    # MCP (POST /direction) and a notification webhook's answer
    directions = Directions(settings.live.direction, store=store, topic=show.scene.set_topic, publish=bus.publish)
    notifier = Notifier(settings, on_direction=directions.from_webhook)
    bus.subscribe(StreamWatch(notifier, settings, store=store))  # warnings, unusual activity, milestones
    # the one outgoing filter's secrets: every value the appliance holds (the control bearer joins
    # once the server has one, the access token once the lifecycle has read the credentials)
    secrets = Secrets(sources=[held.values_list,
                               lambda: [lifecycle.creds.access_token.reveal()] if lifecycle.creds else []])
    chat = ChatServices(publish=bus.publish, outputs=reply_outputs(show), secrets=secrets, environ=held,
                        viewers=lambda: lifecycle.metrics.viewers,
                        token_address=lambda: lifecycle.metrics.token_address or (
                            lifecycle.creds.token_address if lifecycle.creds else None))
    parts = Parts(client=RetakeClient(settings.retake), encoder=encoder,
                  capture=lambda: capture_png(settings.stream.display), notifier=notifier, store=store,
                  chat=chat_factory(settings, store, services=chat), publish=bus.publish,
                  media_identity=lambda: media_identity(settings), directions=directions,
                  scenes=SceneFollow(settings.scene, Stage(switch=show.set_scene, scenes=show.scenes,
                                                           text=show.scene.show)),
                  heartbeat=Heartbeat(settings.live.heartbeat, notifier=notifier, store=store))
    lifecycle = Lifecycle(settings, parts, stop_event=stop, progress=lambda line: print(line, flush=True))
    bus.subscribe(content_lines(content.write, settings))
    metrics = lifecycle.metrics
    show.follow(lambda: {"viewers": metrics.viewers, "market_cap": metrics.market_cap,
                         "live_since": epoch_since(metrics.live_since, lifecycle.clock)
                         if metrics.live_since else None})
    preview = Preview(settings.stream.display, fps=settings.control.preview_fps, width=settings.control.preview_width)

    guards: list[PaneGuard] = []

    def serve_control() -> ControlServer:
        # the control API's server (aiohttp) and commands load on their own thread while the
        # lifecycle goes live: the initial thumbnail does not wait for them (nothing before it needs
        # them; `appliance go-live` of a standing-by appliance is answered once they are up)
        from .control.api import MAX_TEXT, ControlServer
        from .control.commands import LiveCommands
        from .control.mcp import mcp_instructions
        outgoing = OutgoingFilter(secrets, max_chars=MAX_TEXT)
        terminal = Terminal.from_environment()
        if terminal is not None:  # defence in depth: a secret on a pane viewers watch is wiped, the operator told
            guards.append(PaneGuard(terminal, contains_secret=outgoing.contains_secret, on_leak=lambda pane: (
                notifier.notify("terminal_secret", f"A secret showed on the on-screen terminal's {pane} pane; the "
                                "pane and its history were cleared (and the shell's session restarted). Check what "
                                "printed it."))).start())
        commands = LiveCommands(lifecycle, encoder=encoder, content=content, stage=show, voice=show.voice, bus=bus,
                                terminal=guards[0] if guards else None, preview=preview, outgoing=outgoing)
        bus.subscribe(commands.telemetry.on_event)  # /metrics histograms: chat reply latency, say -> audible
        server = ControlServer(commands, state_dir=state_dir, port=settings.control.port,
                               listen=settings.control.listen, bus=bus,
                               session_hours=settings.control.session_hours, mcp=True,
                               mcp_terminal=settings.control.mcp_terminal,
                               mcp_instructions=mcp_instructions(settings),
                               notifications=notifier.file, preview_fps=settings.control.preview_fps)
        secrets.add(server.token)
        return server.start()

    control = Starting(serve_control, stop)
    overlays = OverlayFolder(settings.overlay_dir(), content.write, feed=show.scene.feed, state=settings.layout).start()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    content.write(f"{settings.agent.name} is getting ready to go live...")
    try:
        code = lifecycle.run()
        control.result()  # a control API that could not start fails the run as it did before
        return code
    finally:
        for guard in guards:
            guard.close()
        overlays.stop()
        control.close()
        preview.close()
        if sink_clock is not None:
            sink_clock.terminate()
        show.close()
        notifier.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
