"""The show, wired: the scene model and its link to the renderer, the voice (the speech queue),
the music loop, and the captions and the avatar that follow the voice. :func:`start_show` is
what ``app.py`` calls; the :class:`Show` it returns is what the rest of the controller uses:

    show.voice                                        the Speech (say, flush, interrupt, pending, current)
    show.speak(text, priority="reply") -> Utterance   the same as show.voice.say (never blocks)
    show.caption(text)                                caption-only output, for its reading time
    show.on_event(kind, data)                         one event of the bus -> scene, avatar, music
    show.scene                                        the SceneModel (set_scene, show, stats, alert, ...)

The voice publishes its events (``utterance_started``, ``sentence_started`` with the mouth's
cues and the moment its audio is heard, ...) on the event bus like every other part; the show
is one subscriber among others (``app.connect_show``): caption bar, avatar, music ducking.
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
from ..voice import Speech, Utterance

if TYPE_CHECKING:  # the composed settings, handed in by the composition root
    from ..config import Settings
    from ..voice.music import MusicLoop

log = logging.getLogger("appliance.show")
EventSink = Callable[[str, dict[str, Any]], object]


class Show:
    """See the module docstring."""

    def __init__(self, settings: Settings, *, scene: SceneModel, link: SceneLink | None = None,
                 voice: Speech | None = None, music: MusicLoop | None = None) -> None:
        self.settings, self.scene, self.link = settings, scene, link
        self.voice: Speech | None = voice
        self.music: MusicLoop | None = music
        self._stop = threading.Event()

    # -- what other parts call --

    def speak(self, text: str, priority: str = "reply") -> Utterance:
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
        """One event of the bus (the voice's, the chat's): the scene and its avatar, the music."""
        self.scene.handle(kind, data)
        if self.music is not None and kind in ("utterance_started", "utterance_finished"):
            self.music.duck(kind == "utterance_started")

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


def start_show(settings: Settings, *, pulse: bool, publish: EventSink | None = None,
               environ: Mapping[str, str] = os.environ) -> Show:
    """The show for `appliance live`: the renderer link when the tree runs one
    (``APPLIANCE_SCENE_SOCKET``), the voice when PulseAudio is there, music when configured.
    The voice's events go to ``publish`` (the event bus, whose subscribers include the show);
    without one, straight to the show."""
    from ..voice import PulsePlayer, SpeechQueue, make_voice
    from ..voice.music import MusicLoop
    socket_path = environ.get("APPLIANCE_SCENE_SOCKET")
    link = SceneLink(Path(socket_path)).start() if socket_path else None
    avatar = settings.scene.avatar
    scene = SceneModel(title=settings.agent.name, scene=settings.scene.default,
                       on_change=link.send if link else (lambda state: None),
                       avatar=avatar.state(settings.agent.name), mood_s=avatar.mood_s)
    if settings.scene.topic:
        scene.set_topic(settings.scene.topic)
    show = Show(settings, scene=scene, link=link)
    cfg = settings.voice
    if pulse:
        cache = settings.layout.cache
        show.voice = SpeechQueue(make_voice(cfg, cache_dir=cache / "voice"),
                                 PulsePlayer(settings.stream.sink, volume=lambda: cfg.volume),
                                 workdir=cache / "speech", on_event=publish or show.on_event,
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
