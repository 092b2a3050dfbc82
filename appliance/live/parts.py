"""What a lifecycle is made of, as typed objects: the collaborators it drives (:class:`Parts`),
its clocks and windows (:class:`Timing`), the chat factory, and one run's shared state
(:class:`Run`, what the steps find and the supervision keeps).

The composition root (``app.py``) builds the real parts; tests inject fakes for any of them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..chat import ChatLoop, ChatServices, Responder
from ..core.errors import ApplianceError, RetakeError
from ..core.store import StateStore
from ..retake.client import RetakeClient
from ..retake.credentials import Credentials
from .budget import StartBudget
from .machine import Machine, Publish

if TYPE_CHECKING:  # the composed settings, handed in by the composition root
    from ..config import Settings
    from .direction import Directions
    from .heartbeat import Heartbeat
    from .scenes import SceneFollow

LIVENESS_WINDOW_S = 60.0  # /health fails when the LIVE loop has not turned for this long
CREDENTIALS_RECHECK_S = 15.0  # how often a controller waiting for credentials looks again


class EncoderHealthLike(Protocol):
    @property
    def state(self) -> str: ...  # "running", "stalled", "exited", "stopped"
    @property
    def reason(self) -> str: ...


class EncoderLike(Protocol):
    def start(self, target: str) -> None: ...
    def stop(self) -> object: ...
    def health(self) -> EncoderHealthLike: ...
    def has_output(self) -> bool: ...


class NotifierLike(Protocol):
    """Tells the human operator (:class:`appliance.live.notify.Notifier`)."""

    def notify(self, event: str, text: str, **extra: Any) -> None: ...


def no_publish(kind: str, data: Mapping[str, Any]) -> None:
    """The event bus of a lifecycle without one (tests)."""


@dataclass(frozen=True)
class ChatSession:
    """What the chat of one run is made from: the client with our token, who we are, and where
    a fatal error or a 409 goes (the lifecycle)."""

    client: RetakeClient
    creds: Credentials
    stop_event: threading.Event
    on_fatal: Callable[[RetakeError], None]
    on_conflict: Callable[[], None]
    clock: Callable[[], float]


ChatFactory = Callable[[ChatSession], ChatLoop]


def chat_factory(settings: Settings, store: StateStore, *, services: ChatServices | None = None,
                 responder: Responder | None = None) -> ChatFactory:
    """The chat factory of ``appliance live`` (and of tests): a :class:`ChatLoop` for a session,
    with the brain ``chat.responder`` names unless ``responder`` is given."""
    def make(session: ChatSession) -> ChatLoop:
        creds = session.creds
        return ChatLoop(session.client, settings.chat, user_db_id=creds.userDbId, agent_name=creds.agent_name,
                        state=store, responder=responder, stop_event=session.stop_event,
                        agent_wallet=creds.wallet_address, agent_description=settings.agent.description,
                        services=services, secrets=lambda: [creds.access_token.reveal()],
                        on_fatal=session.on_fatal, on_conflict=session.on_conflict, clock=session.clock)
    return make


@dataclass
class Parts:
    """The collaborators a lifecycle drives."""

    client: RetakeClient
    encoder: EncoderLike
    capture: Callable[[], bytes]  # a PNG of the display (the thumbnail)
    notifier: NotifierLike
    store: StateStore
    chat: ChatFactory
    publish: Publish = no_publish  # the event bus: state, token
    media_identity: Callable[[], object] = lambda: None  # changes when the display or sound server restarts
    scenes: SceneFollow | None = None  # the on-screen scene follows the stream (scene.follow)
    directions: Directions | None = None  # the builder's answer to "which direction?"
    heartbeat: Heartbeat | None = None  # while not live: read, decide, tell the builder (skill section 8)


@dataclass(frozen=True)
class Timing:
    """Clocks and windows (tests shorten or shift them)."""

    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    liveness_window_s: float = LIVENESS_WINDOW_S
    credentials_recheck_s: float = CREDENTIALS_RECHECK_S
    rng: random.Random = field(default_factory=random.Random)

    def call_timeout_s(self) -> float:
        """The deadline of one attempt of one call in the LIVE loop: eight fit in the liveness
        window, so a turn of slow calls (with the heartbeat beaten between them) never reads as stuck."""
        return max(0.5, self.liveness_window_s / 8)


@dataclass
class Run:
    """One run's shared state: what the steps found and the supervision keeps."""

    settings: Settings
    parts: Parts
    timing: Timing
    machine: Machine
    budget: StartBudget
    client: RetakeClient  # the parts' client, with our token once the credentials are known
    creds: Credentials | None = None
    chat: ChatLoop | None = None
    fatal: ApplianceError | None = None
    stream_started: bool = False  # a stream/start was called and no stream/stop since
    # set: go live as soon as the steps allow; clear (control.autostart: false): stand by until
    # request_go_live() (POST /go_live, the console, the MCP tool go_live)
    go_live_requested: threading.Event = field(default_factory=threading.Event)

    def progress(self, line: str) -> None:
        self.machine.progress(line)
