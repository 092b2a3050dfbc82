"""The shapes of the control surface: one :class:`Commands` protocol, and the collaborators
the live appliance's commands are built from.

:class:`Commands` is what every front end drives and every back end implements:

* back ends: the live appliance (:class:`appliance.control.commands.LiveCommands`), the held
  one (:class:`appliance.up.hold.HoldCommands`), and the control API itself seen from outside
  (:class:`appliance.control.client.ControlClient`, over HTTP);
* front ends: the HTTP server (:mod:`appliance.control.api`), the MCP tools
  (:mod:`appliance.control.mcp`, in-process at ``/mcp`` or over stdio through the client), the
  console (through HTTP) and the CLI (through the client).

mypy checks each back end against it where it is handed to a front end. A command a back end
cannot do raises :class:`appliance.core.errors.ApplianceError` with the reason (HTTP 503, an
MCP tool result carrying the reason), never a missing method.

The collaborator protocols say what :class:`LiveCommands` needs of the parts it drives, so
any implementation (the show, a test's fake) fits without ``Any``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..chat.loop import ChatLoop
    from ..config import Settings
    from ..core.store import StateStore
    from ..live.budget import StartBudget
    from ..live.lifecycle import Metrics
    from ..media.encoder import EncoderStats
    from ..retake.client import RetakeClient
    from ..retake.credentials import Credentials
    from ..scene.model import SceneState

Json = dict[str, Any]


class Commands(Protocol):
    """Everything the control API, the console, MCP and the CLI can ask of an appliance."""

    # -- probes and figures (cheap; no platform call) --
    def health(self) -> Json: ...
    def ready(self) -> tuple[bool, str]: ...
    def status(self) -> Json: ...
    def metrics(self) -> str: ...

    # -- the stream --
    def go_live(self, wait_s: float = 60.0) -> Json: ...
    def stop(self) -> Json: ...

    # -- voice and screen --
    def say(self, text: str, *, wait: bool = False, priority: str = "operator") -> Json: ...
    def voice(self, *, flush: bool = False, interrupt: bool = False, volume: float | None = None,
              mute: bool | None = None) -> Json: ...
    def speech(self) -> Json: ...
    def show(self, text: str) -> Json: ...
    def scene(self, name: str) -> Json: ...
    def scene_state(self) -> Json: ...
    def screenshot(self) -> bytes: ...
    def terminal(self, *, text: str | None = None, enter: bool = True, keys: list[str] | None = None,
                 lines: int = 40) -> Json: ...
    def direction(self, text: str) -> Json: ...

    # -- chat --
    def chat(self, message: str) -> Json: ...
    def reply(self, message_id: str, text: str, routes: list[str] | None = None) -> Json: ...
    def read_chat(self, since: int | None = None, limit: int = 50) -> Json: ...
    def viewers(self, limit: int = 20) -> Json: ...
    def chat_to(self, name: str, message: str) -> Json: ...


# --- what LiveCommands is built from ------------------------------------------------------------

class LifecycleView(Protocol):
    """What the commands read of the running lifecycle (and the two requests they make)."""

    settings: Settings
    metrics: Metrics
    store: StateStore
    budget: StartBudget
    creds: Credentials | None
    chat: ChatLoop | None
    client: RetakeClient
    liveness_window_s: float

    def clock(self) -> float: ...
    def wall_clock(self) -> float: ...
    @property
    def go_live_started_at(self) -> float: ...
    def request_stop(self) -> None: ...
    def request_go_live(self) -> None: ...


class EncoderHealthView(Protocol):
    @property
    def state(self) -> str: ...  # running, stalled, exited, stopped


class EncoderView(Protocol):
    """The encoder's health and its latest progress figures."""

    def health(self) -> EncoderHealthView: ...
    def stats(self) -> EncoderStats: ...


class Spoken(Protocol):
    """One queued utterance, as the voice reports it."""

    text: str
    status: str   # queued, speaking, spoken, interrupted, dropped, failed
    error: str

    def wait(self, timeout: float | None = None) -> bool: ...
    def summary(self) -> Json: ...


class Voice(Protocol):
    """The speech queue: ``say`` never blocks (it queues, or drops with the reason)."""

    def say(self, text: str, priority: Any = ...) -> Spoken: ...
    def flush(self) -> int: ...
    def interrupt(self) -> bool: ...
    def pending(self) -> int: ...
    def current(self) -> Spoken | None: ...


class Screen(Protocol):
    """The on-screen data of the scene (the renderer draws what it holds)."""

    def show(self, text: str) -> None: ...
    def set_topic(self, text: str) -> None: ...
    def snapshot(self) -> SceneState: ...


class Stage(Protocol):
    """The scenes: which exist, switching, and the current one's data."""

    def scenes(self) -> list[str]: ...
    def set_scene(self, name: str) -> None: ...
    @property
    def scene(self) -> Screen: ...


class ContentWindow(Protocol):
    """The content window's log (a line viewers read in the terminal's log pane)."""

    def write(self, text: object) -> str: ...


class TerminalPane(Protocol):
    """The on-screen shell viewers watch (tmux)."""

    def send(self, text: str, *, enter: bool = True) -> dict[str, object]: ...
    def keys(self, keys: Iterable[str]) -> dict[str, object]: ...
    def read(self, lines: int = 40, *, pane: str = "shell") -> str: ...


class PreviewSource(Protocol):
    """Frames of the display (JPEG), for the console and the screenshot tool."""

    def frame(self, timeout: float = 5.0, *, newer_than: int = 0) -> tuple[int, bytes]: ...
