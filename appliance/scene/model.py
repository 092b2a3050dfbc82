"""What is on screen, as data: :class:`SceneState` is the one message the controller sends the
renderer (a full snapshot each time, so a restarted renderer is whole again after one message),
and :class:`SceneModel` is the controller's copy that chat, voice and the control API update.

Everything in it is viewer-reachable text, so it is validated on both sides of the socket:
bounded lengths and counts (pydantic), and :func:`appliance.core.sanitize.clean_text` on every
string before it is drawn. Text is always data: the renderer never parses markup or formats
it (Pango's ``set_text``, never ``set_markup``; no ``str.format`` on viewer text).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core.sanitize import clean_name, clean_text

MAX_CHAT = 30            # messages kept for the chat panel
MAX_ALERTS = 5
MAX_FEEDS = 32
TEXT_CHARS = 600         # any one text (a chat message, the caption, a feed line)
FEED_CHARS = 2000        # a feed: several lines
ALERT_S = 6.0            # an alert is shown this long unless told otherwise
Text = Annotated[str, Field(max_length=TEXT_CHARS)]
MAX_CUES = 4000          # mouth shapes of one sentence (appliance.voice.lipsync.MAX_CUES)
MOOD_S = 6.0             # a mood (a reply's emotion tag) shows this long
REACTION_S = 3.0         # a tip, a follow, a trade: the face reacts this long
Colour = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]
Expression = Literal["neutral", "happy", "thinking", "surprised", "sad"]
EXPRESSIONS: tuple[str, ...] = Expression.__args__  # type: ignore[attr-defined]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatLine(_Msg):
    id: Annotated[str, Field(max_length=80)] = ""
    user: Annotated[str, Field(max_length=80)] = ""
    text: Text = ""
    own: bool = False          # the agent's own line
    answering: bool = False    # the agent is answering this one now


class Stats(_Msg):
    viewers: Annotated[int, Field(ge=0, le=10**9)] | None = None
    live_since: float | None = None      # epoch seconds; the renderer shows the uptime
    market_cap: Annotated[float, Field(ge=0, le=1e15)] | None = None


class Alert(_Msg):
    id: Annotated[str, Field(max_length=40)] = ""
    kind: Annotated[str, Field(max_length=20)] = "alert"
    text: Text = ""
    until: float = 0.0         # epoch seconds


class Theme(_Msg):
    """The default avatar's colours (``avatar.colors`` in the config)."""

    skin: Colour = "#f4c7a1"
    hair: Colour = "#6a3fd4"
    eyes: Colour = "#1fb6c9"
    outfit: Colour = "#2b3950"
    accent: Colour = "#ffd166"


class Speech(_Msg):
    """What the mouth says now: ``cues`` ([seconds into the audio, Rhubarb shape]) from
    ``start``, the moment the audio's first sample is heard in the sink (``time.monotonic``,
    which the renderer on the same host shares)."""

    id: Annotated[str, Field(max_length=40)] = ""
    start: float = 0.0
    cues: Annotated[list[tuple[Annotated[float, Field(ge=0, le=600)], Annotated[str, Field(pattern=r"^[XABCDEFGH]$")]]],
                    Field(max_length=MAX_CUES)] = Field(default_factory=list)


class AvatarState(_Msg):
    """The avatar's part of the state: its look, its mood, its speech (times on ``time.monotonic``)."""

    pack: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{0,40}$")] = ""   # "": the default character
    theme: Theme = Field(default_factory=Theme)
    mood: Expression = "neutral"
    mood_until: float = 0.0
    react_at: float = 0.0             # a reaction's hop starts then
    speech: Speech | None = None
    lead_s: Annotated[float, Field(ge=-0.5, le=0.5)] = 1 / 60   # each shape shows this much before its sound


class SceneState(_Msg):
    """The whole on-screen data (one JSON line on the scene socket)."""

    scene: Annotated[str, Field(max_length=40, pattern=r"^[A-Za-z0-9_-]*$")] = ""
    title: Text = ""
    topic: Text = ""
    chat: Annotated[list[ChatLine], Field(max_length=MAX_CHAT)] = Field(default_factory=list)
    caption: Text = ""
    stats: Stats = Field(default_factory=Stats)
    alerts: Annotated[list[Alert], Field(max_length=MAX_ALERTS)] = Field(default_factory=list)
    feeds: Annotated[dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=FEED_CHARS)]],
                     Field(max_length=MAX_FEEDS)] = Field(default_factory=dict)
    avatar: AvatarState = Field(default_factory=AvatarState)


class SceneModel:
    """The controller's copy of what is on screen. Every change calls ``on_change(state)``
    (the link to the renderer sends it); readers get copies."""

    def __init__(self, *, title: str = "", scene: str = "live",
                 on_change: Callable[[SceneState], None] = lambda state: None,
                 clock: Callable[[], float] = time.time, avatar: AvatarState | None = None,
                 mood_s: float = MOOD_S, mono: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._mono = mono
        self.mood_s = mood_s
        self.on_change = on_change
        self._chat: deque[ChatLine] = deque(maxlen=MAX_CHAT)
        self._state = SceneState(scene=scene, title=clean_text(title, 120), avatar=avatar or AvatarState())
        self._caption_token = 0

    def snapshot(self) -> SceneState:
        with self._lock:
            return self._state.model_copy(deep=True, update={"chat": [c.model_copy() for c in self._chat]})

    def _changed(self) -> None:
        self.on_change(self.snapshot())

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._state = self._state.model_copy(update=fields)
        self._changed()

    # -- what the parts of the appliance call --

    def set_scene(self, name: str) -> None:
        self.update(scene=name)

    def set_topic(self, text: str) -> None:
        self.update(topic=clean_text(text, 200))

    def feed(self, name: str, text: str) -> None:
        """A feed file's text (``scene.feeds``): text slots named ``name`` show it."""
        key = clean_text(name, 40)
        lines = [clean_text(line, TEXT_CHARS) for line in str(text).splitlines()]
        with self._lock:
            feeds = dict(self._state.feeds)
            feeds[key] = "\n".join(line for line in lines if line)[:FEED_CHARS]
            while len(feeds) > MAX_FEEDS:
                feeds.pop(next(iter(feeds)))
            self._state = self._state.model_copy(update={"feeds": feeds})
        self._changed()

    def show(self, text: str) -> None:
        """``appliance show TEXT``: the ``show`` feed."""
        self.feed("show", text)

    def chat(self, user: str, text: str, *, id: str = "", own: bool = False) -> None:
        line = ChatLine(id=clean_text(id, 80), user=clean_name(user, 40), text=clean_text(text, TEXT_CHARS), own=own)
        with self._lock:
            self._chat.append(line)
        self._changed()

    def answering(self, comment_id: str | None) -> None:
        """Mark the chat line being answered (None: none)."""
        with self._lock:
            for line in self._chat:
                line.answering = bool(comment_id) and line.id == comment_id
        self._changed()

    def caption(self, text: str, seconds: float | None = None) -> None:
        """Show ``text`` in the caption bar; cleared after ``seconds`` (None: until the next
        caption or :meth:`clear_caption`)."""
        with self._lock:
            self._caption_token += 1
            token = self._caption_token
            self._state = self._state.model_copy(update={"caption": clean_text(text, TEXT_CHARS)})
        self._changed()
        if seconds is not None:
            timer = threading.Timer(seconds, self._clear_if, args=(token,))
            timer.daemon = True
            timer.start()

    def caption_at(self, text: str, at: float) -> None:
        """Show ``text`` in the caption bar from ``at`` (``time.monotonic``: when its sound is
        heard, less the avatar's lead, so the caption and the mouth start together); a caption
        or a clear before then cancels it."""
        delay = at - self._mono()
        if delay <= 0:
            self.caption(text)
            return
        with self._lock:
            self._caption_token += 1
            token = self._caption_token
        timer = threading.Timer(min(delay, 5.0), self._caption_if, args=(token, text))
        timer.daemon = True
        timer.start()

    def _caption_if(self, token: int, text: str) -> None:
        with self._lock:
            if token != self._caption_token:
                return
        self.caption(text)

    def _clear_if(self, token: int) -> None:
        with self._lock:
            if token != self._caption_token:
                return
        self.clear_caption()

    def clear_caption(self) -> None:
        with self._lock:
            self._caption_token += 1
            self._state = self._state.model_copy(update={"caption": ""})
        self._changed()

    def stats(self, *, viewers: int | None = None, live_since: float | None = None,
              market_cap: float | None = None) -> None:
        with self._lock:
            old = self._state.stats
            new = Stats(viewers=old.viewers if viewers is None else max(0, int(viewers)),
                        live_since=old.live_since if live_since is None else live_since,
                        market_cap=old.market_cap if market_cap is None else max(0.0, float(market_cap)))
            if new == old:
                return
            self._state = self._state.model_copy(update={"stats": new})
        self._changed()

    def alert(self, text: str, *, kind: str = "alert", seconds: float = ALERT_S) -> None:
        now = self._clock()
        item = Alert(id=f"{now:.3f}", kind=clean_text(kind, 20), text=clean_text(text, 200), until=now + seconds)
        with self._lock:
            alerts = [*[a for a in self._state.alerts if a.until > now][-(MAX_ALERTS - 1):], item]
            self._state = self._state.model_copy(update={"alerts": alerts})
        self._changed()

    # -- the avatar --

    def _avatar(self, **fields: Any) -> None:
        with self._lock:
            avatar = self._state.avatar.model_copy(update=fields)
            self._state = self._state.model_copy(update={"avatar": avatar})
        self._changed()

    def speaking(self, speech_id: str, start: float, cues: list[Any]) -> None:
        """The mouth follows ``cues`` from ``start`` (monotonic: when the first sample is heard)."""
        try:
            speech = Speech(id=clean_text(speech_id, 40), start=float(start), cues=cues[:MAX_CUES])
        except (ValueError, TypeError):
            return  # malformed timings: the mouth stays still rather than wrong
        self._avatar(speech=speech)

    def silent(self, speech_id: str | None = None) -> None:
        """The mouth rests (only if it is still saying ``speech_id``, when given)."""
        current = self._state.avatar.speech
        if current is not None and (speech_id is None or current.id == speech_id):
            self._avatar(speech=None)

    def mood(self, expression: str, seconds: float | None = None) -> None:
        """Show ``expression`` for ``seconds`` (default ``mood_s``); unknown names are ignored."""
        name = str(expression).strip().lower()
        if name in EXPRESSIONS:
            until = self._mono() + max(0.5, min(60.0, seconds if seconds is not None else self.mood_s))
            self._avatar(mood=name, mood_until=until)

    def react(self, kind: str, data: dict[str, Any]) -> None:
        """A tip, a follow or a trade: a hop and a face (a sale looks sad, a purchase surprised)."""
        sold = kind == "trade" and str(data.get("text") or "").lower().startswith("sell")
        face = {"tip": "happy", "follow": "happy", "trade": "sad" if sold else "surprised"}.get(kind, "happy")
        now = self._mono()
        self._avatar(mood=face, mood_until=now + REACTION_S, react_at=0.0 if sold else now)

    # -- events from the voice queue and the chat's event bus --

    def handle(self, kind: str, data: dict[str, Any]) -> None:
        """One event (``kind``, ``data``) from the voice queue or the chat's event bus:
        ``sentence_started`` -> caption (and the mouth's cues), ``sentence_finished`` -> the mouth
        rests, ``utterance_finished`` -> caption cleared, ``mood`` -> the avatar's expression,
        ``chat`` / ``comment`` -> chat panel, ``tip`` / ``trade`` / ``follow`` -> chat panel, an
        alert and the avatar's reaction, ``reply`` / ``sent`` -> the agent's own line, ``answering`` -> the marked line,
        ``caption`` -> caption for its reading time, ``alert``, ``stats`` / ``viewers``, ``topic``.
        The chat bus's shape (``user: {name}``, ``ids: [...]``, ``count``) and the flat one
        (``username``, ``id``, ``viewers``) are both read. Unknown kinds are ignored (the bus
        carries more than the scene needs)."""
        get = data.get
        if kind == "sentence_started":
            text, audible_at, cues = str(get("sentence") or get("text") or ""), get("audible_at"), get("cues")
            if isinstance(audible_at, (int, float)):
                self.caption_at(text, audible_at - self._state.avatar.lead_s)
            else:
                self.caption(text)
            if isinstance(audible_at, (int, float)) and isinstance(cues, list):
                self.speaking(f"{get('id')}:{get('index')}", audible_at, cues)
        elif kind == "sentence_finished":
            self.silent(f"{get('id')}:{get('index')}")
        elif kind == "utterance_finished":
            self.clear_caption()
            self.silent()
        elif kind == "mood":
            self.mood(str(get("mood") or ""), get("seconds") if isinstance(get("seconds"), (int, float)) else None)
        elif kind in ("comment", "chat", "tip", "trade", "follow"):
            name, text = _sender(data), str(get("text") or "")
            self.chat(name, text, id=str(get("id") or ""))
            if kind in ("tip", "trade", "follow"):
                self.alert(f"{name}: {text}" if text else name, kind=kind)
                self.react(kind, data)
        elif kind in ("reply", "sent"):
            self.chat(str(get("username") or get("user") or self._state.title), str(get("text") or ""), own=True)
            if kind == "reply":
                self.answering(None)
        elif kind == "answering":
            ids = get("ids")
            first = ids[0] if isinstance(ids, list) and ids else get("id") or get("comment_id")
            self.answering(str(first or "") or None)
        elif kind == "caption":
            text = str(get("text") or "")
            self.caption(text, seconds=reading_seconds(text))
        elif kind == "alert":
            self.alert(str(get("text") or ""), kind=str(get("kind") or "alert"))
        elif kind == "stats":
            self.stats(viewers=get("viewers"), live_since=get("live_since"), market_cap=get("market_cap"))
        elif kind == "viewers" and isinstance(get("count"), int):
            self.stats(viewers=get("count"))
        elif kind == "topic":
            self.set_topic(str(get("text") or ""))


def _sender(data: dict[str, Any]) -> str:
    user = data.get("user")
    if isinstance(user, dict):
        return str(user.get("name") or "")
    return str(data.get("username") or user or "")


def reading_seconds(text: str) -> float:
    """How long a caption-only line stays up: 15 characters a second, 2 to 12 s."""
    return max(2.0, min(12.0, len(text) / 15.0))
