"""The avatar's motion: which :class:`~.character.Pose` it has at a moment (``time.monotonic``),
and when that next changes (the renderer sleeps until then).

  * the mouth: the speech's cue in force ``lead_s`` ahead of now (a frame shows what is heard
    while it is on screen, so each shape goes up half a frame early), rest otherwise;
  * the eyes: a blink (close, shut, open: 0.16 s) at random intervals of 2–6 s;
  * breathing (a 4.2 s cycle) and a slow sway of the head (9.7 s), a tilt of its own for some
    moods; a hop when it reacts to a tip, a follow or a purchase;
  * the expression: the mood while it lasts, else the region's own (``expression:``).

Poses are quantized to what the output can show (a breath step is one pixel at the region's
scale, a sway step a pixel at the top of the head), so equal poses are equal pixels: the
renderer sleeps until the pose changes, and while idle that is a few times a second.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

from ..model import AvatarState
from .character import BREATH_UNITS, Pose

BLINK = ((0.05, 0.5), (0.11, 0.0), (0.16, 0.5))   # (until seconds into the blink, eye openness)
BLINK_EVERY = (2.0, 6.0)
BREATH_S = 4.2
SWAY_S = 9.7
SWAY_DEG = 1.2
HOP_S = 0.45
HOP_UNITS = 16.0
LOOK_AHEAD_S = 1.0            # how far ahead the next breath or sway step is searched
STEP_S = 1 / 60               # ... in steps of this
MIN_TILT_STEP = 0.4           # degrees: the sway moves in steps of a pixel at the top of the head, or this
MOOD_TILT = {"thinking": 7.0, "sad": -4.0, "happy": 2.0}
HEAD_REACH = 294.0            # design units from the neck pivot to the top of the head


@dataclass
class Blinker:
    """Random blinks; ``rng`` is injected so tests see a fixed schedule."""

    rng: random.Random
    start: float | None = None

    def _schedule(self, now: float) -> float:
        if self.start is None:
            self.start = now + self.rng.uniform(*BLINK_EVERY)
        while now >= self.start + BLINK[-1][0]:
            self.start += BLINK[-1][0] + self.rng.uniform(*BLINK_EVERY)
        return self.start

    def eyes(self, now: float) -> float:
        start = self._schedule(now)
        if now < start:
            return 1.0
        return next(value for until, value in BLINK if now - start < until)

    def next_change(self, now: float) -> float:
        start = self._schedule(now)
        if now < start:
            return start
        return start + next(until for until, _ in BLINK if now - start < until)


def mouth_at(avatar: AvatarState, now: float) -> tuple[str, float | None]:
    """The mouth shape at ``now`` and when the next one starts (None: none is coming)."""
    speech = avatar.speech
    if speech is None or not speech.cues:
        return "X", None
    t = now + avatar.lead_s - speech.start
    times = [c[0] for c in speech.cues]
    i = bisect.bisect_right(times, t) - 1
    shape = speech.cues[i][1] if i >= 0 else "X"
    nxt = speech.start - avatar.lead_s + times[i + 1] if i + 1 < len(times) else None
    return shape, nxt


class Motion:
    """Poses of one avatar region over time."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.blinker = Blinker(rng or random.Random())

    def expression(self, avatar: AvatarState, idle: str, now: float) -> str:
        return avatar.mood if now < avatar.mood_until else idle

    @staticmethod
    def idle(expression: str, now: float, scale: float) -> tuple[float, float]:
        """(breath, tilt) at ``now``, quantized: the head rises by whole pixels, turns by steps."""
        lift = BREATH_UNITS * math.sin(2 * math.pi * now / BREATH_S)  # the head's rise, design units
        breath = round(lift * scale) / (BREATH_UNITS * scale)
        step = max(MIN_TILT_STEP, math.degrees(1.0 / (HEAD_REACH * scale)))
        sway = MOOD_TILT.get(expression, 0.0) + SWAY_DEG * math.sin(2 * math.pi * now / SWAY_S)
        return breath, round(round(sway / step) * step, 4)

    def pose(self, avatar: AvatarState, idle: str, now: float, scale: float) -> Pose:
        """The pose at ``now`` for a region drawn at ``scale`` pixels per design unit."""
        scale = max(scale, 0.05)
        expression = self.expression(avatar, idle, now)
        mouth, _ = mouth_at(avatar, now)
        breath, tilt = self.idle(expression, now, scale)
        hop = 0.0
        since = now - avatar.react_at
        if avatar.react_at and 0 <= since < HOP_S:
            hop = round(HOP_UNITS * math.sin(math.pi * since / HOP_S) * scale) / scale
        return Pose(expression=expression, mouth=mouth, eyes=self.blinker.eyes(now),
                    breath=breath, tilt=tilt, hop=hop)

    def next_change(self, avatar: AvatarState, idle: str, now: float, scale: float) -> float:
        """When the pose changes next: the next cue, blink step, mood's end, breath or sway step
        (searched ahead: a few sines, no drawing), or a second from now at the latest."""
        scale = max(scale, 0.05)
        expression = self.expression(avatar, idle, now)
        current = self.idle(expression, now, scale)
        step = next((now + i * STEP_S for i in range(1, int(LOOK_AHEAD_S / STEP_S) + 1)
                     if self.idle(expression, now + i * STEP_S, scale) != current), now + LOOK_AHEAD_S)
        times = [step, self.blinker.next_change(now)]
        _, cue = mouth_at(avatar, now)
        if cue is not None:
            times.append(cue)
        if now < avatar.mood_until:
            times.append(avatar.mood_until)
        since = now - avatar.react_at
        if avatar.react_at and 0 <= since < HOP_S:
            times.append(now + 1 / 60)
        return min(times)
