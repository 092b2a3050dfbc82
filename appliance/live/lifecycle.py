"""`appliance live`: the reference's 10-step go-live sequence as one supervised state machine.

States and the only legal transitions are in :data:`TRANSITIONS`; :meth:`Lifecycle._enter`
is the one place a transition happens and is logged (with how long the previous step took).

    CREDENTIALS -> VERIFICATION -> SKILL_CHECK -> RTMP -> STREAM_START -> ENCODER_START
    -> WAIT_LIVE -> THUMBNAIL -> OPEN_CHAT -> LIVE -> (RECOVERING -> RTMP ...) -> STOPPING -> STOPPED
    (WAITING: alive and unready, saying why and until when — see :mod:`appliance.live.waiting`)

Fresh RTMP credentials are fetched for every stream and every recovery, never reused. The
initial thumbnail is uploaded right after ``is_live``; the opening chat line follows. While
LIVE, one supervising loop checks the encoder (exit or stall), refreshes the thumbnail and
reads status (an ingest drop), and a chat thread keeps chat answered; each of the loop's calls
has its own deadline and the loop's heartbeat is beaten between them, so a slow platform never
looks like a stuck controller. Recoveries back off exponentially. Every ``stream/start`` — the
first one included — counts against a persisted budget per hour (:mod:`appliance.live.budget`;
"spam streaming" is forbidden): past it the appliance stops the encoder and WAITS in a
cool-down, telling the operator once, then tries again when the hour allows. No credentials
yet is a WAITING too. Whatever escapes (any exception) still ends in :meth:`Lifecycle._shutdown`:
the encoder first, then one short ``stream/stop``, the final state saved.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from ..chat import ChatLoop, ChatServices, Responder
from ..core.errors import (
    ApplianceError,
    CredentialsError,
    MediaError,
    RetakeConflict,
    RetakeError,
    RetakeUnauthorized,
)
from ..core.sanitize import clean_text
from ..core.store import StateStore
from ..retake.client import RetakeClient
from ..retake.credentials import (
    ENV_TOKEN,
    Credentials,
    Secret,
    resolve_credentials,
    save_credentials,
    update_token_info,
)
from ..retake.models import Comment, RtmpCredentials, StreamStatus
from ..retake.skill import check_skill
from ..retake.verification import register_agent, tweet_instructions
from .budget import StartBudget
from .notify import Notifier
from .waiting import Hold, iso

if TYPE_CHECKING:  # the composed settings, handed in by the composition root
    from ..config import Settings

log = logging.getLogger("appliance.lifecycle")
TOKEN_STATS_EVERY_S = 60.0  # the heartbeat's token performance read (reference section 8)
LIVENESS_WINDOW_S = 60.0  # /health fails when the LIVE loop has not turned for this long
CREDENTIALS_RECHECK_S = 15.0  # how often a controller waiting for credentials looks again
WAIT_LIVE_FIRST_POLL_S = 0.25  # waiting for is_live: poll again after this, doubling up to status_poll_s
STOP_CALL_TIMEOUT_S = 4.0  # stream/stop at shutdown: one attempt, this deadline (supervisord's grace is 25 s)


class State(enum.Enum):
    INIT = "init"
    CREDENTIALS = "credentials"
    VERIFICATION = "verification"
    SKILL_CHECK = "skill_check"
    RTMP = "rtmp"
    STREAM_START = "stream_start"
    ENCODER_START = "encoder_start"
    WAIT_LIVE = "wait_live"
    THUMBNAIL = "thumbnail"
    OPEN_CHAT = "open_chat"
    LIVE = "live"
    RECOVERING = "recovering"
    WAITING = "waiting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


_S = State
TRANSITIONS: dict[State, set[State]] = {
    _S.INIT: {_S.CREDENTIALS},
    _S.CREDENTIALS: {_S.VERIFICATION, _S.WAITING},
    _S.WAITING: {_S.CREDENTIALS, _S.RTMP},  # a hold ends: look again / start the stream
    _S.VERIFICATION: {_S.SKILL_CHECK},
    _S.SKILL_CHECK: {_S.RTMP, _S.WAITING},
    _S.RTMP: {_S.STREAM_START, _S.RECOVERING},
    _S.STREAM_START: {_S.ENCODER_START, _S.RECOVERING},
    _S.ENCODER_START: {_S.WAIT_LIVE, _S.RECOVERING},
    _S.WAIT_LIVE: {_S.THUMBNAIL, _S.RECOVERING, _S.LIVE},  # LIVE directly after a mid-stream recovery
    _S.THUMBNAIL: {_S.OPEN_CHAT},
    _S.OPEN_CHAT: {_S.LIVE},
    _S.LIVE: {_S.RECOVERING},
    _S.RECOVERING: {_S.RTMP, _S.RECOVERING, _S.WAITING},
}
_ANYTIME = {_S.STOPPING, _S.FAILED}
for _targets in TRANSITIONS.values():
    _targets |= _ANYTIME
TRANSITIONS[_S.STOPPING] = {_S.STOPPED, _S.FAILED}


class Stopped(Exception):
    """The stop event was set while a step waited."""


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


@dataclass
class Metrics:
    """What /metrics and `status` show; written by the lifecycle only."""

    state: State = State.INIT
    state_since: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.monotonic)
    live_since: float | None = None
    is_live: bool = False
    viewers: int = 0
    restarts: int = 0
    thumbnails: int = 0
    last_error: str = ""
    last_heartbeat: float = field(default_factory=time.monotonic)  # last platform status read
    loop_heartbeat: float = field(default_factory=time.monotonic)  # last supervising loop turn
    go_live_s: float | None = None
    token_address: str = ""
    market_cap: float | None = None
    verified: bool = False
    step_times: dict[str, float] = field(default_factory=dict)
    hold: Hold | None = None  # while WAITING: why, and until when


class Lifecycle:
    """Runs one agent's stream from credentials to stop. Every dependency is injectable."""

    def __init__(self, settings: Settings, *, client: RetakeClient, encoder: EncoderLike,
                 capture: Callable[[], bytes], notifier: Notifier, state: StateStore,
                 stop_event: threading.Event | None = None, responder: Responder | None = None,
                 chat_services: ChatServices | None = None,
                 on_state: Callable[[str, str], object] = lambda state, detail: None,
                 content: Callable[[str], object] = lambda line: None,
                 on_chat: Callable[[str, dict[str, object]], None] = lambda kind, data: None,
                 progress: Callable[[str], None] = print,
                 media_identity: Callable[[], object] = lambda: None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 liveness_window_s: float = LIVENESS_WINDOW_S,
                 credentials_recheck_s: float = CREDENTIALS_RECHECK_S,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.client = client
        self.encoder = encoder
        self.capture = capture
        self.notifier = notifier
        self.store = state
        self.stop_event = stop_event or threading.Event()
        self.responder = responder  # None: the brain chat.responder names
        self.chat_services = chat_services
        self.on_state = on_state
        self.content = content
        # ("chat", {id, kind, text, user: {name}}) / ("sent", {text}) for a caller without the chat's
        # event bus (app.py feeds the show from the bus: chat, answering, reply, viewers)
        self.on_chat = on_chat
        self.progress = progress
        self.media_identity = media_identity  # changes when the display (or sink) server restarts
        self._media_at_start: object = None
        self.clock = clock
        self.wall_clock = wall_clock
        self.liveness_window_s = liveness_window_s
        self.credentials_recheck_s = credentials_recheck_s
        self.rng = rng or random.Random()
        self.budget = StartBudget(state, per_hour=settings.recovery.max_restarts_per_hour, clock=wall_clock)
        self.metrics = Metrics(started_at=clock(), state_since=clock(), last_heartbeat=clock(),
                               loop_heartbeat=clock())
        self.creds: Credentials | None = None
        self.chat: ChatLoop | None = None
        self.fatal: ApplianceError | None = None
        self._consecutive_failures = 0
        self._stream_started = False
        self._t0 = clock()
        # set: go live as soon as the steps allow; clear (control.autostart: false): stand by until
        # request_go_live() (POST /go_live, the console, the MCP tool go_live)
        self.go_live_requested = threading.Event()
        if settings.control.autostart:
            self.go_live_requested.set()

    # --- the one transition function ----------------------------------------------------

    def _enter(self, new: State, detail: str = "") -> None:
        old = self.metrics.state
        if new not in TRANSITIONS.get(old, set()):
            raise AssertionError(f"illegal transition {old.value} -> {new.value}")
        now = self.clock()
        took = now - self.metrics.state_since
        self.metrics.step_times[old.value] = round(took, 3)
        self.metrics.state, self.metrics.state_since = new, now
        self.metrics.loop_heartbeat = now  # a moving state machine is a live one
        line = f"[{now - self._t0:6.1f}s] {old.value} done in {took:.2f}s -> {new.value}"
        self.progress(line + (f": {detail}" if detail else ""))
        log.info("state %s -> %s%s", old.value, new.value, f" ({detail})" if detail else "")
        self.on_state(new.value, detail)

    def _wait(self, seconds: float) -> None:
        if self.stop_event.wait(max(0.0, seconds)):
            raise Stopped()

    def _beat(self) -> None:
        """The LIVE loop is turning: /health judges liveness by this."""
        self.metrics.loop_heartbeat = self.clock()

    def request_stop(self) -> None:
        self.stop_event.set()

    @property
    def go_live_started_at(self) -> float:
        """When the current go-live's clock started (the process start, or the go_live request)."""
        return self._t0

    def request_go_live(self) -> None:
        """Go live now if standing by (idempotent: nothing happens once started)."""
        self.go_live_requested.set()

    def _standby(self) -> None:
        """control.autostart false: WAIT (alive, not ready) until go_live is asked for; the
        go-live time is then counted from that request."""
        if self.go_live_requested.is_set():
            return
        self._hold(Hold("standby", "standing by (control.autostart: false): go live with `appliance go-live`, "
                                   "POST /go_live, the console or the MCP tool go_live"),
                   every_s=0.25, done=self.go_live_requested.is_set)
        self._t0 = self.clock()

    def call_timeout_s(self) -> float:
        """The deadline of one attempt of one call in the LIVE loop: eight fit in the liveness
        window, so a turn of slow calls (with the heartbeat beaten between them) never reads as stuck."""
        return max(0.5, self.liveness_window_s / 8)

    # --- holds: alive, unready, saying why ------------------------------------------------

    def _hold(self, hold: Hold, *, every_s: float, done: Callable[[], bool] | None = None) -> None:
        """WAITING until ``hold.until`` has passed, or ``done()`` (asked every ``every_s``) is true.
        The operator is told once per hold, across restarts (the hold's key is persisted)."""
        self.metrics.hold = hold
        self._enter(State.WAITING, hold.line())
        if self.store.data.hold_notified != hold.key():
            self.notifier.notify(hold.reason, hold.line(), until=iso(hold.until) if hold.until else None)
            self.store.update(hold_notified=hold.key())
        while True:
            if hold.until is not None:
                left = hold.until - self.wall_clock()
                if left <= 0:
                    break
                self._wait(min(left, every_s))
            else:
                self._wait(every_s)
                if done is not None and done():
                    break
        self.metrics.hold = None
        self.store.update(hold_notified="")
        self.progress(f"done waiting ({hold.reason})")

    def _respect_budget(self, why: str) -> None:
        """Return when a stream/start is within the budget; else stop streaming and WAIT in a
        cool-down until it is (the process stays up: no restart policy can turn this into a loop)."""
        until = self.budget.blocked_until()
        if until is None:
            return
        self._stop_streaming("cool-down")
        cap = self.settings.recovery.max_restarts_per_hour
        hold = Hold("cooldown", f"{cap} stream starts in the last hour ({why}); not starting another before "
                                f"{iso(until)} to avoid spam streaming — check the host, the network and the ingest",
                    until)
        self._hold(hold, every_s=30.0)

    def _stop_streaming(self, why: str) -> None:
        """Encoder first, then one short stream/stop if a session was started."""
        try:
            self.encoder.stop()
        except Exception:
            log.exception("encoder stop failed (%s)", why)
        self.metrics.is_live = False
        if self._stream_started:
            self._stream_started = False
            try:
                self.client.with_limits(timeout_s=STOP_CALL_TIMEOUT_S, retries=0).stream_stop()
            except RetakeError as exc:
                log.warning("stream/stop (%s): %s", why, exc.message)

    def _stream_start(self) -> bool:
        """The one place stream/start is called: counted against the budget first (persisted),
        never past it. False (logged) when the budget is spent."""
        if self.budget.blocked_until() is not None:
            log.warning("stream/start not called: the restart budget is spent")
            return False
        count = self.budget.record()
        log.info("stream/start (%d of %d this hour)", count, self.settings.recovery.max_restarts_per_hour)
        started = self.client.stream_start()
        self._stream_started = True
        if started.token and started.token.tokenAddress and self.creds and not self.creds.token_address:
            self.creds = self.creds.with_token_info(started.token.tokenAddress,
                                                    started.token.ticker or self.creds.ticker)
            update_token_info(self.settings.credentials_path(), self.creds.token_address,
                              self.creds.token_ticker)
            self.progress(f"token {self.creds.token_ticker} at {self.creds.token_address} saved to credentials")
        return True

    # --- steps ------------------------------------------------------------------------------

    def _credentials(self) -> Credentials:
        while True:
            found = resolve_credentials(self.settings)
            if found.saved is not None or found.env_token or self.settings.auto_register:
                break
            self._hold(Hold("no_credentials", f"no credentials at {found.path} and no {ENV_TOKEN}: run "
                                              "`appliance register` (or set RETAKE_ACCESS_TOKEN, or "
                                              "auto_register: true); looking again every "
                                              f"{self.credentials_recheck_s:g}s"),
                       every_s=self.credentials_recheck_s,
                       done=lambda: bool(resolve_credentials(self.settings).token))
            self._enter(State.CREDENTIALS, "credentials appeared")
        path, creds = found.path, found.saved
        if creds is None and found.env_token:
            # token from the environment only (a Kubernetes Secret): the rest is the config's
            # profile and what the platform says about us; saved without the token itself
            env_token = found.env_token
            me = self.client.with_token(env_token).stream_status()
            agent = self.settings.agent
            creds = Credentials(access_token=env_token, agent_name=agent.name, agent_id="",
                                userDbId=me.userDbId or "", wallet_address=agent.wallet_address,
                                ticker=agent.ticker, token_address=me.token_address or "", source="env")
            if not creds.userDbId:
                raise CredentialsError("stream/status did not say our userDbId",
                                       fix="restore the credentials file that `appliance register` wrote")
            save_credentials(path, replace(creds, access_token=Secret("")))
            self.progress(f"credentials from {ENV_TOKEN} (userDbId {creds.userDbId}); "
                          f"saved to {path} without the token")
        if creds is None:
            creds, path = register_agent(self.settings, self.client)
            self.progress(f"registered {creds.agent_name}; credentials saved to {path} (mode 600)")
        self.client = self.client.with_token(creds.access_token)
        return creds

    def _verification(self) -> None:
        notified = False
        while True:
            if self.client.verification_status().verified:
                self.metrics.verified = True
                return
            if not notified:
                message = self.client.prepare_verify().verification_message
                text = "Verification needed before going live. " + tweet_instructions(message)
                self.notifier.notify("verification_required", text)
                self.progress(text)
                notified = True
            self._wait(self.settings.recovery.verification_recheck_s)

    def _start_stream(self) -> None:
        """Steps 2-5: fresh keys, stream/start (within the budget), encoder, wait for is_live."""
        self._respect_budget("going live")
        self._enter(State.RTMP)
        rtmp: RtmpCredentials = self.client.rtmp()
        self._enter(State.STREAM_START, f"fresh RTMP key from {rtmp.url}")
        if self.chat is not None:
            self.chat.baseline()  # before stream/start: the first viewer's message is never history
        if not self._stream_start():
            raise MediaError("the restart budget is spent")  # a 409 handler spent it meanwhile: recover waits
        self._enter(State.ENCODER_START)
        self._media_at_start = self.media_identity()
        self.encoder.start(rtmp.target())
        self._enter(State.WAIT_LIVE)
        self._wait_live()

    def _wait_live(self) -> None:
        cfg = self.settings.stream
        deadline = self.clock() + cfg.live_timeout_s
        # First poll as soon as the encoder has pushed data (no blind 3 s wait), then every poll_s.
        while not self.encoder.has_output() and self.clock() < deadline:
            health = self.encoder.health()
            if health.state in ("exited", "stopped"):
                raise MediaError(f"encoder exited before going live: {health.reason}")
            self._wait(0.1)
        # then again soon (the ingest may take a moment to report the publish), backing off to
        # every status_poll_s: a first poll that came too early no longer costs a whole interval
        interval = WAIT_LIVE_FIRST_POLL_S
        while True:
            status = self.client.stream_status()
            self._record_status(status)
            if status.is_live:
                return
            health = self.encoder.health()
            if health.state != "running":
                raise MediaError(f"not live: encoder {health.state} ({health.reason})")
            if self.clock() >= deadline:
                raise MediaError(f"not live after {cfg.live_timeout_s:.0f}s although the encoder runs: "
                                 "the ingest refused the stream or the key is stale")
            self._wait(min(interval, cfg.status_poll_s, max(0.0, deadline - self.clock())))
            interval *= 2

    def _record_status(self, status: StreamStatus) -> None:
        self.metrics.is_live = status.is_live
        self.metrics.viewers = status.viewers
        self.metrics.last_heartbeat = self.clock()
        if status.token_address:
            self.metrics.token_address = status.token_address

    def upload_thumbnail(self, *, attempts: int = 1, client: RetakeClient | None = None) -> bool:
        """Capture the display and upload it; True when it went up.

        With ``attempts`` > 1 (the mandatory initial thumbnail) a failed capture or upload is
        tried again a second later; the last failure is raised. Otherwise failures are logged
        and the next refresh tries again. ``client``: the one to upload with (the LIVE loop's
        has a short deadline).
        """
        client = client or self.client
        for attempt in range(1, attempts + 1):
            try:
                image = self.capture()
                self._beat()
                try:
                    client.update_thumbnail(image, filename="thumbnail.png", content_type="image/png")
                except RetakeConflict:
                    if not self._stream_start():
                        raise
                    client.update_thumbnail(image, filename="thumbnail.png", content_type="image/png")
                self.metrics.thumbnails += 1
                return True
            except RetakeUnauthorized:
                raise
            except (MediaError, RetakeError) as exc:
                self.metrics.last_error = f"thumbnail: {exc.message}"
                if attempt == attempts:
                    if attempts > 1:
                        raise
                    log.warning("thumbnail not updated: %s", exc.message)
                    return False
                self._wait(1.0)
        return False

    def _go_live(self) -> None:
        """Steps 2-9; a failure before is_live goes through recovery, then on to step 6."""
        try:
            self._start_stream()
        except (MediaError, RetakeError) as exc:
            if not exc.temporary:
                raise
            self._recover(exc.message)
        self._enter(State.THUMBNAIL)
        self.upload_thumbnail(attempts=5)
        self.metrics.go_live_s = round(self.clock() - self._t0, 3)
        self._enter(State.OPEN_CHAT, f"initial thumbnail uploaded {self.metrics.go_live_s:.2f}s after start")
        if self.chat is None:
            raise RuntimeError("the chat loop is made before going live")
        self.chat.send(self.settings.chat.opening_message)
        self.chat.start()
        self.metrics.live_since = self.clock()
        count = self.store.data.stream_count + 1
        self.store.update(stream_count=count)
        self._enter(State.LIVE, f"stream #{count}")
        self._notify_live()

    def _notify_live(self) -> None:
        ideas = self.settings.chat.stream_ideas
        url = self.settings.stream_url()
        text = (f"I'm live at {url} Viewers: {self.metrics.viewers} Stream ideas: "
                + ", ".join(f"[{i}]" for i in ideas) + " — which direction?\n"
                f"I'm live. To grow our audience, can you share the stream link? Suggested: Moltbook, "
                f"Twitter/X, Telegram groups, Discord servers, any AI agent communities. Link: {url}")
        self.notifier.notify("live", text, url=url, viewers=self.metrics.viewers)
        self.content(f"LIVE at {url} — say hi in chat")

    # --- recovery -----------------------------------------------------------------------------

    def _recover(self, reason: str) -> None:
        """Fresh keys -> stream/start -> encoder, until live again; returns in WAIT_LIVE.
        Every attempt is within the restart budget: past it, a cool-down (WAITING) first."""
        self._enter(State.RECOVERING, reason)
        self.metrics.is_live = False
        self.metrics.last_error = reason
        self.store.update(last_error=reason)
        while True:
            self._respect_budget(reason)
            if self._consecutive_failures:
                cap = min(self.settings.recovery.backoff_max_s,
                          self.settings.recovery.backoff_s * 2 ** (self._consecutive_failures - 1))
                delay = self.rng.uniform(cap / 2, cap)
                self.progress(f"recovery: waiting {delay:.1f}s before attempt {self._consecutive_failures + 1}")
                self._wait(delay)
            self.metrics.restarts += 1
            try:
                self._start_stream()
            except (MediaError, RetakeError) as exc:
                if not exc.temporary:
                    raise
                self._consecutive_failures += 1
                reason = exc.message
                self.metrics.last_error = reason
                self._enter(State.RECOVERING, reason)
                continue
            self._consecutive_failures = 0
            return

    def _recover_live(self, reason: str) -> None:
        self._recover(reason)
        self._enter(State.LIVE, f"recovered (restart #{self.metrics.restarts})")
        self.upload_thumbnail(client=self._live_client())

    # --- the LIVE loop ------------------------------------------------------------------------

    def _live_client(self) -> RetakeClient:
        """The client of the LIVE loop: one attempt per call, each within :meth:`call_timeout_s`
        (the loop's next turn is the retry)."""
        return self.client.with_limits(timeout_s=self.call_timeout_s(), retries=0)

    def _supervise(self) -> None:
        cfg = self.settings.stream
        live = self._live_client()
        next_thumb = self.clock() + cfg.thumbnail_interval_s
        next_status = self.clock() + cfg.status_poll_s
        next_media_check = self.clock() + 1.0
        next_token_stats = self.clock()
        not_live_count = 0
        while True:
            self._beat()
            if self.fatal:
                raise self.fatal
            health = self.encoder.health()
            if health.state != "running":
                self._recover_live(f"encoder {health.state}: {health.reason}")
                next_status = self.clock() + cfg.status_poll_s
                continue
            now = self.clock()
            if now >= next_media_check:
                # x11grab keeps sending the last frame of a dead X server: only a restart helps
                next_media_check = now + 1.0
                if self.media_identity() != self._media_at_start:
                    self._recover_live("the display or sound server restarted under the encoder")
                    continue
            try:
                if now >= next_status:
                    next_status = now + cfg.status_poll_s
                    status = live.stream_status()
                    self._beat()
                    self._record_status(status)
                    not_live_count = 0 if status.is_live else not_live_count + 1
                    if not_live_count >= 2:
                        not_live_count = 0
                        self._recover_live("the platform reports the stream offline (ingest dropped)")
                        continue
                if now >= next_token_stats:
                    next_token_stats = now + TOKEN_STATS_EVERY_S
                    self._read_token_stats(live)
                    self._beat()
                if now >= next_thumb:
                    next_thumb = now + cfg.thumbnail_interval_s
                    self.upload_thumbnail(client=live)  # a failure is logged; the next refresh tries again
            except RetakeUnauthorized:
                raise
            except RetakeConflict:
                self.progress("platform says no active session (409): calling stream/start")
                self._stream_start()
            except RetakeError as exc:
                self.metrics.last_error = exc.message
                log.warning("heartbeat: %s", exc.message)
            self._wait(0.25)

    def _read_token_stats(self, client: RetakeClient) -> None:
        address = self.metrics.token_address or (self.creds.token_address if self.creds else "")
        if address:
            stats = client.token_stats(address)
            self.metrics.market_cap = stats.market_cap

    def _on_chat_fatal(self, exc: RetakeError) -> None:
        self.fatal = exc
        self.stop_event.set()

    def _on_chat_conflict(self) -> None:
        try:
            self._stream_start()
        except RetakeError as exc:
            log.warning("stream/start after 409 failed: %s", exc.message)

    def _chat_in(self, c: Comment) -> None:
        self.content(f"{c.username}: {c.text}")
        kind = c.kind if c.kind in ("tip", "trade", "follow") else "chat"
        self.on_chat(kind, {"id": c.id, "kind": c.kind, "text": c.text, "user": {"name": c.username}})

    def _chat_out(self, text: str) -> None:
        name = self.creds.agent_name if self.creds else ""
        self.content(f"{name} > {text}")
        self.on_chat("sent", {"text": text, "username": name})

    # --- run ----------------------------------------------------------------------------------

    def _steps(self) -> None:
        self._enter(State.CREDENTIALS)
        self.creds = self._credentials()
        self._enter(State.VERIFICATION, f"agent {self.creds.agent_name}")
        self._verification()
        self._enter(State.SKILL_CHECK)
        if self.settings.retake.skill_check:
            check = check_skill(self.settings.retake, self.settings.layout.skill_dir)
            self.progress(check.line())
            if check.outcome == "changed":
                self.notifier.notify("skill_changed", check.line())
        creds = self.creds
        self.chat = ChatLoop(self.client, self.settings.chat, user_db_id=self.creds.userDbId,
                             agent_name=self.creds.agent_name, state=self.store,
                             responder=self.responder, stop_event=self.stop_event,
                             agent_wallet=self.creds.wallet_address,
                             agent_description=self.settings.agent.description,
                             services=self.chat_services,
                             secrets=lambda: [creds.access_token.reveal()],
                             on_message=self._chat_in, on_sent=self._chat_out,
                             on_fatal=self._on_chat_fatal, on_conflict=self._on_chat_conflict,
                             clock=self.clock)
        self._standby()
        self._go_live()
        self._supervise()

    def run(self) -> int:
        """The whole job; returns the process exit code. Whatever escapes a step — an
        ApplianceError or any other exception (a transport error nobody mapped, a bug) — ends
        in the same orderly shutdown; only an unexpected one is reported as a crash."""
        try:
            self._steps()
        except Stopped:
            pass
        except RetakeUnauthorized as exc:
            self.fatal = ApplianceError(f"retake.tv refused the access token ({exc.message})",
                                        fix="re-check RETAKE_ACCESS_TOKEN or the credentials file; stopping")
        except ApplianceError as exc:
            self.fatal = exc
        except Exception as exc:
            self.fatal = self._crash(exc)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: shut down, then let it go on
            self.fatal = ApplianceError(f"interrupted ({type(exc).__name__})")
            self._shutdown()
            raise
        return self._shutdown()

    def _crash(self, exc: BaseException) -> ApplianceError:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        for line in "".join(lines).splitlines()[-20:]:  # cleaned: an answer's text must not drive a terminal
            log.error("crash: %s", clean_text(line, 300))
        return ApplianceError(f"the controller crashed: {type(exc).__name__}: {clean_text(exc, 200)}",
                              fix="stopped cleanly (encoder, stream/stop); see the log and report it")

    def _shutdown(self) -> int:
        """Encoder first (nothing streams after this), then one stream/stop with a short
        deadline, then the final state; every step runs even if one before it failed."""
        if isinstance(self.fatal, RetakeUnauthorized):
            self.fatal = ApplianceError(f"retake.tv refused the access token ({self.fatal.message})",
                                        fix="re-check RETAKE_ACCESS_TOKEN or the credentials file")
        if self.metrics.state in (State.STOPPING, State.STOPPED, State.FAILED):
            return self.fatal.exit_code if self.fatal else 0
        self._enter(State.STOPPING, self.fatal.message if self.fatal else "stop requested")
        self.stop_event.set()
        final: dict[str, object] = {}
        was_started = self._stream_started
        try:
            self.encoder.stop()
        except Exception:
            log.exception("encoder stop failed")
        if was_started:
            self._stream_started = False
            try:
                result = self.client.with_limits(timeout_s=STOP_CALL_TIMEOUT_S, retries=0).stream_stop()
                final = result.model_dump()
            except Exception as exc:
                message = exc.message if isinstance(exc, ApplianceError) else type(exc).__name__
                log.warning("stream/stop: %s", message)
                final = {"error": message}
        if self.chat:
            self.chat.join(5)
        try:
            final.update(restarts=self.metrics.restarts, thumbnails=self.metrics.thumbnails,
                         messages_in=self.store.data.messages_in, messages_out=self.store.data.messages_out,
                         ended=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self.store.update(last_stream=final, last_error=self.fatal.message if self.fatal else "")
        except Exception:
            log.exception("final state not saved")
        if was_started:
            self.progress("final stats: " + ", ".join(f"{k}={v}" for k, v in final.items()))
        if self.fatal:
            try:
                self.notifier.notify("stopped_on_error", str(self.fatal))
            except Exception:
                log.exception("notification failed")
            self.progress(f"error: {self.fatal}")
            self._enter(State.FAILED)
            return self.fatal.exit_code
        self._enter(State.STOPPED)
        return 0
