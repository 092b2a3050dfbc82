"""The show, wired: the scene model and its link to the renderer, the speech queue, the music
loop, and the captions that follow the voice. :func:`start_show` is what ``app.py`` calls;
the :class:`Show` it returns is what the rest of the controller uses:

    show.speak(text, priority="reply") -> Utterance   queue speech (never blocks)
    show.caption(text)                                caption-only output, for its reading time
    show.on_event(kind, data)                         feed an event (chat bus -> scene)
    show.scene                                        the SceneModel (set_scene, show, stats, alert, ...)

Events of the voice queue (``utterance_started`` ...) update the caption bar and the music's
ducking, then go on to ``forward(kind, data)`` (the chat engineer's event bus).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ApplianceError, InputError, MediaError
from ..scene.link import SceneLink
from ..scene.model import SceneModel, reading_seconds
from ..scene.template import scene_files

if TYPE_CHECKING:  # the composed settings, handed in by the composition root
    from ..config import Settings

log = logging.getLogger("appliance.show")
EventSink = Callable[[str, dict[str, Any]], object]


class Show:
    """See the module docstring."""

    def __init__(self, settings: Settings, *, scene: SceneModel, link: SceneLink | None = None,
                 voice: Any = None, music: Any = None, forward: EventSink = lambda k, d: None) -> None:
        self.settings, self.scene, self.link = settings, scene, link
        self.voice, self.music, self.forward = voice, music, forward
        self._stop = threading.Event()

    # -- what other parts call --

    def speak(self, text: str, priority: str = "reply") -> Any:
        if self.voice is None:
            raise ApplianceError("no voice: PulseAudio is not available", fix="run under `appliance up`")
        return self.voice.say(text, priority)

    def caption(self, text: str) -> None:
        self.scene.caption(text, seconds=reading_seconds(text))

    def scenes(self) -> list[str]:
        return sorted(scene_files(self.settings.scene_dir()))

    def set_scene(self, name: str) -> None:
        known = self.scenes()
        if name not in known:
            raise InputError(f"no scene {name!r}; there are: {', '.join(known) or 'none'}")
        self.scene.set_scene(name)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        """An event from the voice queue (or the chat bus): scene, music, then forwarded."""
        self.scene.handle(kind, data)
        if self.music is not None and kind in ("utterance_started", "utterance_finished"):
            self.music.duck(kind == "utterance_started")
        if kind.startswith(("utterance_", "sentence_")):
            self.forward(kind, data)

    # -- stats from the lifecycle, polled (only changes reach the renderer) --

    def follow(self, read: Callable[[], dict[str, Any]], every_s: float = 2.0) -> None:
        def run() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.scene.stats(**read())
                except Exception:
                    log.debug("stats not read", exc_info=True)
        threading.Thread(target=run, name="scene-stats", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        if self.voice is not None:
            self.voice.close()
        if self.music is not None:
            self.music.stop()
        if self.link is not None:
            self.link.close()


def start_show(settings: Settings, *, pulse: bool, forward: EventSink = lambda k, d: None,
               environ: Mapping[str, str] = os.environ) -> Show:
    """The show for `appliance live`: the renderer link when the tree runs one
    (``APPLIANCE_SCENE_SOCKET``), the voice when PulseAudio is there, music when configured."""
    from ..voice import PaplayPlayer, SpeechQueue, make_voice
    from ..voice.music import MusicLoop
    socket_path = environ.get("APPLIANCE_SCENE_SOCKET")
    link = SceneLink(Path(socket_path)).start() if socket_path else None
    scene = SceneModel(title=settings.agent.name, scene=settings.scene.default,
                       on_change=link.send if link else (lambda state: None))
    if settings.scene.topic:
        scene.set_topic(settings.scene.topic)
    show = Show(settings, scene=scene, link=link, forward=forward)
    cfg = settings.voice
    if pulse:
        cache = settings.layout.cache
        show.voice = SpeechQueue(make_voice(cfg, cache_dir=cache / "voice"),
                                 PaplayPlayer(settings.stream.sink, volume=lambda: cfg.volume),
                                 workdir=cache / "speech", on_event=show.on_event,
                                 max_pending=cfg.queue_max, max_wait_s=cfg.max_wait_s,
                                 max_chars=cfg.max_chars).start()
        if cfg.music is not None:
            try:
                show.music = MusicLoop(cfg.music, settings.stream.sink, settings.stream.sample_rate).start()
            except MediaError as exc:
                log.warning("no music: %s", exc.message)
    return show


def epoch_since(monotonic_start: float, clock: Callable[[], float]) -> float:
    """A monotonic-clock start time as epoch seconds (what the renderer shows uptime from)."""
    return time.time() - (clock() - monotonic_start)
