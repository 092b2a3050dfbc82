"""The scene follows the stream (``scene.follow``, on by default), as a streamer's scene
switcher would:

    going live (credentials ... opening line)         starting   (overlays/welcome.txt is on it)
    live                                              live       (``scene.starting_s`` after the opening line)
    recovering, held (cool-down), after a drop        brb        (whatever viewers can still see)
    stopping                                          ending     (this stream's figures; streamed for
                                                                  ``scene.ending_s`` before the encoder stops)

A switch happens on a transition only: ``appliance scene NAME`` stays on screen until the
stream's next phase. A scene that is not among the templates is skipped (logged once).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..scene.settings import SceneConfig
from .machine import Machine, State
from .waiting import Hold

log = logging.getLogger("appliance.live.scenes")


class Phase(enum.Enum):
    """What viewers should see; the value is the scene's name."""

    STARTING = "starting"
    LIVE = "live"
    BRB = "brb"
    ENDING = "ending"


def phase_for(state: State, *, been_live: bool, hold: Hold | None) -> Phase | None:
    """The scene for a lifecycle state (None: leave the screen as it is). Before the first
    LIVE, going live shows the starting card; after it, any way back to live shows brb."""
    if state is State.LIVE:
        return Phase.LIVE
    if state is State.RECOVERING:
        return Phase.BRB
    if state is State.WAITING:
        held = been_live or (hold is not None and hold.reason == "cooldown")
        return Phase.BRB if held else Phase.STARTING
    if state in (State.STOPPING, State.STOPPED, State.FAILED):
        return None  # the end card comes from SceneFollow.ending (with the figures, before the encoder stops)
    return Phase.BRB if been_live else Phase.STARTING


def final_line(*, duration_s: float, peak_viewers: int, messages: int, replies: int) -> str:
    """The end card's figures: ``Live 12m 04s · peak 7 viewers · 23 messages · 9 replies``."""
    minutes, seconds = divmod(max(0, int(duration_s)), 60)
    hours, minutes = divmod(minutes, 60)
    live = f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"
    return (f"Live {live} · peak {peak_viewers} viewer{'s' * (peak_viewers != 1)} · "
            f"{messages} message{'s' * (messages != 1)} · {replies} repl{'ies' if replies != 1 else 'y'}")


@dataclass(frozen=True)
class Stage:
    """The screen controls the follower uses (the show in ``app.py``; fakes in tests)."""

    switch: Callable[[str], None]          # show this scene
    scenes: Callable[[], Iterable[str]]    # the scene templates there are
    text: Callable[[str], None]            # the ``show`` feed (the end card's figures)


class SceneFollow:
    """Switches scenes with the lifecycle's phases; see the module docstring."""

    def __init__(self, cfg: SceneConfig, stage: Stage, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.stage, self.clock = cfg, stage, clock
        self.current: Phase | None = None
        self._live_at: float | None = None  # when the starting card gives way to the live scene
        self._missing: set[str] = set()

    def follow(self, machine: Machine) -> Callable[[State, State], None]:
        """The hook the lifecycle's state machine calls after every transition."""
        def on_enter(old: State, new: State) -> None:
            m = machine.metrics
            phase = phase_for(new, been_live=m.live_since is not None, hold=m.hold)
            if phase is None:
                return
            if phase is Phase.LIVE and self.current is Phase.STARTING and self.cfg.starting_s > 0:
                self._live_at = self.clock() + self.cfg.starting_s  # the first viewers see the welcome
                return
            self._live_at = None
            self.enter(phase)
        return on_enter

    def enter(self, phase: Phase) -> bool:
        """Show ``phase``'s scene; True when the screen changed."""
        if not self.cfg.follow or phase is self.current:
            return False
        name = phase.value
        if name not in set(self.stage.scenes()):
            if name not in self._missing:
                self._missing.add(name)
                log.warning("scene.follow: no %s scene among the templates; the screen stays as it is", name)
            return False
        self.stage.switch(name)
        self.current = phase
        log.info("scene: %s", name)
        return True

    def tick(self) -> bool:
        """Called by the LIVE loop: True when the live scene has just replaced the starting card."""
        if self._live_at is None or self.clock() < self._live_at:
            return False
        self._live_at = None
        return self.enter(Phase.LIVE)

    def ending(self, *, duration_s: float, peak_viewers: int, messages: int, replies: int) -> float:
        """The end card with this stream's figures; the seconds it must stay on stream (0: not shown)."""
        if not self.cfg.follow or self.cfg.ending_s <= 0:
            return 0.0
        self._live_at = None
        self.stage.text(final_line(duration_s=duration_s, peak_viewers=peak_viewers, messages=messages,
                                   replies=replies))
        return self.cfg.ending_s if self.enter(Phase.ENDING) else 0.0
