"""The host brain: the offline default, and every other brain's fallback.

It greets new viewers by name and returning ones with something remembered (tips, earlier
streams, their last line, a note), thanks tips and trades by amount, answers ``!help``,
``!uptime`` and ``!ideas``, reads a busy chat in one line, and never says the same canned line
twice in a row. Quiet minutes are filled by the :class:`ProactiveBank` (``chat.proactive``):
lines from a configurable bank, none ever said twice and no phrase used in the last stream(s)
(remembered in the viewer memory, so across restarts and streams).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Sequence

from ..memory import Viewer, ViewerMemory, line_key
from ..settings import ProactiveConfig
from .base import ChatContext, Incoming, Turn

log = logging.getLogger("appliance.chat")

COMMANDS = ("help", "uptime", "ideas")
_WELCOME = ("Welcome, {names}! Glad you're here.", "Welcome, {names}! Pull up a chair; !help shows what I do.",
            "Welcome, {names}! You picked a good moment.", "Welcome, {names}! Say anything, I read everything.")
_ACKS = ("{name}, noted — that goes on the list.", "Good one, {name}. Keep them coming.",
         "{name} is steering now. Anyone want to counter that?", "Heard you, {name}. Chat, do we go with it?",
         "{name} has a point, and I am taking it.", "Filed under 'things {name} was right about'.",
         "{name}, say more. I am listening.", "Chat, {name} just raised the bar.")
_QUESTIONS = ("Good question, {name}. I am working it out live; stay and see.",
              "{name} asks the real questions. Give me a minute on that one.",
              "{name}: fair question. The short answer is: watch what I do next.",
              "{name}, I will answer that on stream. Hold me to it.")
_BUSY = ("Chat is busy! Reading all of you: {names}. Keep it coming.",
         "{count} messages at once, I love it. {names}: I see you.",
         "Okay chat, {names}: one at a time is overrated. I am reading everything.")
_QUESTION_WORDS = ("who", "what", "why", "how", "when", "where", "can", "could", "do", "does", "are", "is",
                   "will", "would", "should")


def join_names(names: Sequence[str], limit: int = 5) -> str:
    """'a', 'a and b', 'a, b and c', 'a, b, c and 4 more'."""
    names = list(names)
    if len(names) > limit:
        return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    if len(names) <= 1:
        return names[0] if names else "chat"
    return ", ".join(names[:-1]) + " and " + names[-1]


def callback_for(viewer: Viewer) -> str:
    """Something remembered about a returning viewer."""
    if viewer.tips:
        return f"still grateful for those {viewer.tips_sol:g} SOL"
    if viewer.notes:
        return f"I remember: {viewer.notes[0]}"
    if viewer.last_text:
        return f"last time you said \"{viewer.last_text[:50]}\""
    if viewer.sessions:
        return f"stream number {viewer.sessions + 1} together"
    return "good to see you again"


def _is_question(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered.endswith("?") or lowered.split(" ", 1)[0] in _QUESTION_WORDS


class _Rotation:
    """Templates in shuffled order, never the same one twice in a row (nor within the last few)."""

    def __init__(self, templates: Sequence[str], rng: random.Random) -> None:
        self.templates = list(templates)
        self.rng = rng
        self.recent: deque[str] = deque(maxlen=max(1, len(templates) // 2))

    def pick(self) -> str:
        choices = [t for t in self.templates if t not in self.recent] or self.templates
        template = self.rng.choice(choices)
        self.recent.append(template)
        return template


class ProactiveBank:
    """Lines for quiet moments: a template (a phrase) with an idea. A line is never said twice,
    not even in a later stream (the viewer memory remembers them, bounded). The phrases used in
    the last ``rest_streams`` streams rest while others are left; within a stream the least
    recently used phrase comes first. When every line is used up, nothing is said (logged once
    per stream, with the fix)."""

    def __init__(self, cfg: ProactiveConfig, *, memory: ViewerMemory | None = None,
                 rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.memory = memory
        self.rng = rng or random.Random()
        self._said: set[str] = set()        # without a memory: this process only
        self._used: dict[str, float] = {}   # phrase -> when, without a memory
        self._warned: dict[str, str] = {}   # what was logged, for which stream

    def _stream(self) -> str:
        return self.memory.session if self.memory else ""

    def _warn_once(self, what: str, message: str, *args: object) -> None:
        if self._warned.get(what) != self._stream():
            self._warned[what] = self._stream()
            log.warning(message, *args)

    def _templates(self, viewers: int) -> tuple[list[str], list[str]]:
        """The usable phrases, least recently used first: those free, and those resting."""
        resting = self.memory.phrases_of_recent_streams(self.cfg.rest_streams) if self.memory else set()
        last = self.memory.phrase_last_used() if self.memory else self._used
        templates = [t for t in dict.fromkeys(self.cfg.lines) if not ("{viewers}" in t and viewers < 2)]
        self.rng.shuffle(templates)
        templates.sort(key=lambda t: last.get(t, float("-inf")))  # stable: ties stay shuffled
        return [t for t in templates if t not in resting], [t for t in templates if t in resting]

    def _line(self, templates: list[str], ctx: ChatContext, viewers: int) -> str | None:
        ideas = [ctx.direction] if ctx.direction else list(ctx.ideas or ["a live experiment"])
        for template in templates:
            self.rng.shuffle(ideas)
            for idea in ideas:
                line = template.format(idea=idea, uptime=ctx.uptime(), viewers=viewers, agent=ctx.agent_name)
                if self.memory.said_before(line) if self.memory else line_key(line) in self._said:
                    continue
                if self.memory is not None:
                    self.memory.record_said(line, phrase=template)
                self._said.add(line_key(line))
                self._used[template] = ctx.clock()
                return line
        return None

    def next(self, ctx: ChatContext) -> str | None:
        """A line never said before, from a phrase not resting if there is one; None (logged)
        when every line is used up."""
        viewers = ctx.viewers() or 0
        free, resting = self._templates(viewers)
        line = self._line(free, ctx, viewers)
        if line is None and resting:
            line = self._line(resting, ctx, viewers)
            if line is not None:
                self._warn_once("resting", "the proactive phrases not used in the last %d stream(s) are used up: "
                                "one comes back (add lines to chat.proactive.lines, or use the llm brain, which "
                                "writes its own)", self.cfg.rest_streams)
        if line is None:
            self._warn_once("used up", "every proactive line has been said (a line is said once): add lines to "
                            "chat.proactive.lines, or use the llm brain, which writes its own")
        return line


class HostBrain:
    """Offline and instant: greetings with memory, thanks with amounts, commands, busy-chat lines."""

    name = "host"

    def __init__(self, *, bank: ProactiveBank | None = None, mention_max: int = 5,
                 rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.bank = bank or ProactiveBank(ProactiveConfig(), rng=self.rng)
        self.mention_max = mention_max
        self._welcome = _Rotation(_WELCOME, self.rng)
        self._acks = _Rotation(_ACKS, self.rng)
        self._questions = _Rotation(_QUESTIONS, self.rng)
        self._busy = _Rotation(_BUSY, self.rng)

    def respond(self, turn: Turn, ctx: ChatContext) -> str | None:
        mood = self.mood(turn)
        if mood:
            ctx.express(mood)
        if turn.kind == "command":
            return self._command(turn, ctx)
        if turn.kind == "greeting":
            return self._greeting(turn)
        if turn.kind == "tip":
            return self._tips(turn.items)
        if turn.kind == "trade":
            return self._trades(turn.items)
        if turn.kind == "follow":
            return f"Thanks for the follow, {join_names(turn.names, self.mention_max)}!"
        if len(turn.items) > 1:
            return self._busy.pick().format(names=join_names(turn.names, self.mention_max), count=len(turn.items))
        return self._message(turn.items[0])

    def proactive(self, ctx: ChatContext) -> str | None:
        return self.bank.next(ctx)

    @staticmethod
    def mood(turn: Turn) -> str | None:
        """The avatar's face for this reply: glad for a welcome, thoughtful for a question,
        surprised by a busy chat (tips, follows and trades: the scene's own reaction, none here)."""
        if turn.kind in ("tip", "follow", "trade"):
            return None
        if turn.kind == "greeting":
            return "happy"
        if len(turn.items) > 1:
            return "surprised"
        return "thinking" if turn.kind == "message" and _is_question(turn.items[0].text) else "neutral"

    # --- the kinds of turn ----------------------------------------------------------------------

    def _command(self, turn: Turn, ctx: ChatContext) -> str:
        names = join_names(turn.names, self.mention_max)
        if turn.command == "help":
            return f"{names}: commands are !help, !uptime and !ideas. Anything else, just say it."
        if turn.command == "uptime":
            return f"{names}: live for {ctx.uptime()}."
        if turn.command == "ideas":
            ideas = " ".join(f"{n}) {idea[:70]}" for n, idea in enumerate(ctx.ideas[:3], 1))
            return f"{names}: on the menu — {ideas or 'whatever chat picks'}. Vote in chat."
        return f"{names}: I don't know !{turn.command}. Try !help."

    def _greeting(self, turn: Turn) -> str:
        new = [i.name for i in turn.items if not (i.viewer and i.viewer.returning)]
        back = [i for i in turn.items if i.viewer and i.viewer.returning]
        parts = []
        if new:
            parts.append(self._welcome.pick().format(names=join_names(list(dict.fromkeys(new)), self.mention_max)))
        if len(back) == 1:
            parts.append(f"Welcome back, {back[0].name} — {callback_for(back[0].viewer)}.")  # type: ignore[arg-type]
        elif back:
            names = list(dict.fromkeys(i.name for i in back))
            parts.append(f"Welcome back, {join_names(names, self.mention_max)}! The regulars are here.")
        return " ".join(parts)

    def _tips(self, items: Sequence[Incoming]) -> str:
        if len(items) == 1:
            item = items[0]
            amount = item.comment.amount
            what = f"the {amount:g} SOL tip" if amount else "the tip"
            line = f"{item.name}, thank you for {what}!"
            viewer = item.viewer
            if viewer and viewer.tips and amount:
                line += f" That's {viewer.tips_sol + amount:g} SOL from you so far."
            return line
        parts = [f"{i.name} ({i.comment.amount:g} SOL)" if i.comment.amount else i.name for i in items]
        return f"Thank you for the tips: {join_names(parts, self.mention_max)}!"

    def _trades(self, items: Sequence[Incoming]) -> str:
        def sold(item: Incoming) -> bool:
            data = item.comment.raw.get("trade_data") if item.comment.raw else None
            kind = data.get("type") if isinstance(data, dict) else None
            return (kind or item.text.split(" ", 1)[0].lower()) == "sell"

        if len(items) == 1:
            item = items[0]
            usd = f"${item.comment.amount:.2f}" if item.comment.amount else "some"
            if sold(item):
                return f"{item.name} sold {usd} of the token. Profit taken, no hard feelings."
            return f"{item.name} just bought {usd} of the token. Welcome aboard!"
        buyers = [i.name for i in items if not sold(i)]
        total = sum(i.comment.amount or 0 for i in items)
        who = join_names(list(dict.fromkeys(buyers or [i.name for i in items])), self.mention_max)
        return f"{len(items)} trades (${total:.2f}) — {who}, the chart sees you."

    def _message(self, item: Incoming) -> str:
        viewer = item.viewer
        if viewer and viewer.messages in (9, 24, 49, 99):
            return f"{item.name}, that's message number {viewer.messages + 1} from you. Regular status confirmed."
        rotation = self._questions if _is_question(item.text) else self._acks
        return rotation.pick().format(name=item.name)


OfflineResponder = HostBrain  # the old name
