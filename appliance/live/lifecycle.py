"""`appliance live`: the reference's 10-step go-live sequence as one supervised state machine.

States and the only legal transitions are in :data:`TRANSITIONS`; :meth:`Lifecycle._enter`
is the one place a transition happens and is logged (with how long the previous step took).

    CREDENTIALS -> VERIFICATION -> SKILL_CHECK -> RTMP -> STREAM_START -> ENCODER_START
    -> WAIT_LIVE -> THUMBNAIL -> OPEN_CHAT -> LIVE -> (RECOVERING -> RTMP ...) -> STOPPING -> STOPPED

Fresh RTMP credentials are fetched for every stream and every recovery, never reused. The
initial thumbnail is uploaded right after ``is_live``; the opening chat line follows. While
LIVE, one supervising loop checks the encoder (exit or stall), refreshes the thumbnail and
reads status (an ingest drop), and a chat thread keeps chat answered. Recoveries back off
exponentially and are capped per hour ("spam streaming" is forbidden): past the cap the
appliance stops and alerts the operator instead of looping.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

from ..chat import ChatLoop, ChatServices, Responder
from ..config import Settings
from ..credentials import (ENV_TOKEN, Credentials, Secret, load_credentials, save_credentials,
                          token_from_environment, update_token_info)
from ..errors import (ApplianceError, CredentialsError, MediaError, RetakeConflict, RetakeError,
                     RetakeUnauthorized)
from ..notify import Notifier
from ..retake.client import RetakeClient
from ..retake.models import RtmpCredentials, StreamStatus
from ..retake.skill import check_skill
from ..state import StateStore
from ..verification import register_agent, tweet_instructions

log = logging.getLogger("appliance.lifecycle")
TOKEN_STATS_EVERY_S = 60.0  # the heartbeat's token performance read (reference section 8)


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
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


_S = State
TRANSITIONS: dict[State, set[State]] = {
    _S.INIT: {_S.CREDENTIALS},
    _S.CREDENTIALS: {_S.VERIFICATION},
    _S.VERIFICATION: {_S.SKILL_CHECK},
    _S.SKILL_CHECK: {_S.RTMP},
    _S.RTMP: {_S.STREAM_START, _S.RECOVERING},
    _S.STREAM_START: {_S.ENCODER_START, _S.RECOVERING},
    _S.ENCODER_START: {_S.WAIT_LIVE, _S.RECOVERING},
    _S.WAIT_LIVE: {_S.THUMBNAIL, _S.RECOVERING, _S.LIVE},  # LIVE directly after a mid-stream recovery
    _S.THUMBNAIL: {_S.OPEN_CHAT},
    _S.OPEN_CHAT: {_S.LIVE},
    _S.LIVE: {_S.RECOVERING},
    _S.RECOVERING: {_S.RTMP, _S.RECOVERING},
}
_ANYTIME = {_S.STOPPING, _S.FAILED}
for _targets in TRANSITIONS.values():
    _targets |= _ANYTIME
TRANSITIONS[_S.STOPPING] = {_S.STOPPED, _S.FAILED}


class Stopped(Exception):
    """The stop event was set while a step waited."""


class EncoderHealthLike(Protocol):
    state: str  # "running", "stalled", "exited", "stopped"
    reason: str


class EncoderLike(Protocol):
    def start(self, target: str) -> None: ...
    def stop(self) -> None: ...
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


class Lifecycle:
    """Runs one agent's stream from credentials to stop. Every dependency is injectable."""

    def __init__(self, settings: Settings, *, client: RetakeClient, encoder: EncoderLike,
                 capture: Callable[[], bytes], notifier: Notifier, state: StateStore,
                 stop_event: threading.Event | None = None, responder: Responder | None = None,
                 chat_services: ChatServices | None = None,
                 on_state: Callable[[str, str], None] = lambda state, detail: None,
                 content: Callable[[str], None] = lambda line: None,
                 progress: Callable[[str], None] = print,
                 media_identity: Callable[[], object] = lambda: None,
                 clock: Callable[[], float] = time.monotonic,
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
        self.progress = progress
        self.media_identity = media_identity  # changes when the display (or sink) server restarts
        self._media_at_start: object = None
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = Metrics(started_at=clock(), state_since=clock(), last_heartbeat=clock(),
                               loop_heartbeat=clock())
        self.creds: Credentials | None = None
        self.chat: ChatLoop | None = None
        self.fatal: ApplianceError | None = None
        self._consecutive_failures = 0
        self._stream_started = False
        self._t0 = clock()

    # --- the one transition function ----------------------------------------------------

    def _enter(self, new: State, detail: str = "") -> None:
        old = self.metrics.state
        if new not in TRANSITIONS.get(old, set()):
            raise AssertionError(f"illegal transition {old.value} -> {new.value}")
        now = self.clock()
        took = now - self.metrics.state_since
        self.metrics.step_times[old.value] = round(took, 3)
        self.metrics.state, self.metrics.state_since = new, now
        line = f"[{now - self._t0:6.1f}s] {old.value} done in {took:.2f}s -> {new.value}"
        self.progress(line + (f": {detail}" if detail else ""))
        log.info("state %s -> %s%s", old.value, new.value, f" ({detail})" if detail else "")
        self.on_state(new.value, detail)

    def _wait(self, seconds: float) -> None:
        if self.stop_event.wait(max(0.0, seconds)):
            raise Stopped()

    def request_stop(self) -> None:
        self.stop_event.set()

    # --- steps ------------------------------------------------------------------------------

    def _credentials(self) -> Credentials:
        path = self.settings.credentials_path()
        creds = load_credentials(path)
        env_token = token_from_environment()
        if creds is None and env_token:
            # token from the environment only (a Kubernetes Secret): the rest is the config's
            # profile and what the platform says about us; saved without the token itself
            me = self.client.with_token(env_token).stream_status()
            agent = self.settings.agent
            creds = Credentials(access_token=env_token, agent_name=agent.name, agent_id="",
                                userDbId=me.userDbId or "", wallet_address=agent.wallet_address,
                                ticker=agent.ticker, token_address=me.token_address or "", source="env")
            if not creds.userDbId:
                raise CredentialsError("stream/status did not say our userDbId",
                                       fix="restore the credentials file that `appliance register` wrote")
            save_credentials(path, replace(creds, access_token=Secret("")))
            self.progress(f"credentials from {ENV_TOKEN} (userDbId {creds.userDbId}); saved to {path} without the token")
        if creds is None:
            if not self.settings.auto_register:
                raise CredentialsError(f"no credentials at {path}",
                                       fix="run `appliance register`, or set auto_register: true")
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
        """Steps 2-5: fresh keys, stream/start, encoder, wait for is_live."""
        self._enter(State.RTMP)
        rtmp: RtmpCredentials = self.client.rtmp()
        self._enter(State.STREAM_START, f"fresh RTMP key from {rtmp.url}")
        if self.chat is not None:
            self.chat.baseline()  # before stream/start: the first viewer's message is never history
        started = self.client.stream_start()
        self._stream_started = True
        if started.token and started.token.tokenAddress and self.creds and not self.creds.token_address:
            self.creds = self.creds.with_token_info(started.token.tokenAddress,
                                                    started.token.ticker or self.creds.ticker)
            update_token_info(self.settings.credentials_path(), self.creds.token_address,
                              self.creds.token_ticker)
            self.progress(f"token {self.creds.token_ticker} at {self.creds.token_address} saved to credentials")
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
            self._wait(min(cfg.status_poll_s, max(0.0, deadline - self.clock())))

    def _record_status(self, status: StreamStatus) -> None:
        self.metrics.is_live = status.is_live
        self.metrics.viewers = status.viewers
        self.metrics.last_heartbeat = self.clock()
        if status.token_address:
            self.metrics.token_address = status.token_address

    def upload_thumbnail(self, *, attempts: int = 1) -> bool:
        """Capture the display and upload it; True when it went up.

        With ``attempts`` > 1 (the mandatory initial thumbnail) a failed capture or upload is
        tried again a second later; the last failure is raised. Otherwise failures are logged
        and the next refresh tries again.
        """
        for attempt in range(1, attempts + 1):
            try:
                image = self.capture()
                try:
                    self.client.update_thumbnail(image, filename="thumbnail.png", content_type="image/png")
                except RetakeConflict:
                    self.client.stream_start()
                    self.client.update_thumbnail(image, filename="thumbnail.png", content_type="image/png")
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
        assert self.chat is not None
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

    def _restart_budget_left(self) -> bool:
        now = time.time()
        recent = [t for t in self.store.data.restart_times if now - t < 3600]
        self.store.data.restart_times = recent
        return len(recent) < self.settings.recovery.max_restarts_per_hour

    def _recover(self, reason: str) -> None:
        """Fresh keys -> stream/start -> encoder, until live again; returns in WAIT_LIVE."""
        self._enter(State.RECOVERING, reason)
        self.metrics.is_live = False
        self.metrics.last_error = reason
        self.store.update(last_error=reason)
        while True:
            if not self._restart_budget_left():
                cap = self.settings.recovery.max_restarts_per_hour
                text = (f"Stream keeps failing ({reason}); {cap} restarts in the last hour. "
                        "Stopped to avoid spam streaming — please check the host.")
                self.notifier.notify("failed", text)
                raise ApplianceError(text)
            if self._consecutive_failures:
                cap = min(self.settings.recovery.backoff_max_s,
                          self.settings.recovery.backoff_s * 2 ** (self._consecutive_failures - 1))
                delay = self.rng.uniform(cap / 2, cap)
                self.progress(f"recovery: waiting {delay:.1f}s before attempt {self._consecutive_failures + 1}")
                self._wait(delay)
            self.store.data.restart_times.append(time.time())
            self.metrics.restarts += 1
            self.store.save()
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
        self.upload_thumbnail()

    # --- the LIVE loop ------------------------------------------------------------------------

    def _supervise(self) -> None:
        cfg = self.settings.stream
        next_thumb = self.clock() + cfg.thumbnail_interval_s
        next_status = self.clock() + cfg.status_poll_s
        next_media_check = self.clock() + 1.0
        next_token_stats = self.clock()
        not_live_count = 0
        while True:
            self.metrics.loop_heartbeat = self.clock()
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
                    status = self.client.stream_status()
                    self._record_status(status)
                    not_live_count = 0 if status.is_live else not_live_count + 1
                    if not_live_count >= 2:
                        not_live_count = 0
                        self._recover_live("the platform reports the stream offline (ingest dropped)")
                        continue
                if now >= next_token_stats:
                    next_token_stats = now + TOKEN_STATS_EVERY_S
                    self._read_token_stats()
                if now >= next_thumb:
                    next_thumb = now + cfg.thumbnail_interval_s
                    self.upload_thumbnail()  # a failure is logged; the next refresh tries again
            except RetakeUnauthorized:
                raise
            except RetakeConflict:
                self.progress("platform says no active session (409): calling stream/start")
                self.client.stream_start()
            except RetakeError as exc:
                self.metrics.last_error = exc.message
                log.warning("heartbeat: %s", exc.message)
            self._wait(0.25)

    def _read_token_stats(self) -> None:
        address = self.metrics.token_address or (self.creds.token_address if self.creds else "")
        if address:
            stats = self.client.token_stats(address)
            self.metrics.market_cap = stats.market_cap

    def _on_chat_fatal(self, exc: RetakeError) -> None:
        self.fatal = exc
        self.stop_event.set()

    def _on_chat_conflict(self) -> None:
        try:
            self.client.stream_start()
        except RetakeError as exc:
            log.warning("stream/start after 409 failed: %s", exc.message)

    # --- run ----------------------------------------------------------------------------------

    def run(self) -> int:
        """The whole job; returns the process exit code."""
        try:
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
            self.chat = ChatLoop(self.client, self.settings.chat, user_db_id=self.creds.userDbId,
                                 agent_name=self.creds.agent_name, state=self.store,
                                 responder=self.responder, stop_event=self.stop_event,
                                 agent_wallet=self.creds.wallet_address,
                                 agent_description=self.settings.agent.description,
                                 services=self.chat_services,
                                 secrets=lambda creds=self.creds: [creds.access_token.reveal()],
                                 on_message=lambda c: self.content(f"{c.username}: {c.text}"),
                                 on_sent=lambda text, name=self.creds.agent_name: self.content(f"{name} > {text}"),
                                 on_fatal=self._on_chat_fatal, on_conflict=self._on_chat_conflict,
                                 clock=self.clock)
            self._go_live()
            self._supervise()
        except Stopped:
            pass
        except RetakeUnauthorized as exc:
            self.fatal = ApplianceError(f"retake.tv refused the access token ({exc.message})",
                                        fix="re-check RETAKE_ACCESS_TOKEN or the credentials file; stopping")
        except ApplianceError as exc:
            self.fatal = exc
        return self._shutdown()

    def _shutdown(self) -> int:
        if isinstance(self.fatal, RetakeUnauthorized):
            self.fatal = ApplianceError(f"retake.tv refused the access token ({self.fatal.message})",
                                        fix="re-check RETAKE_ACCESS_TOKEN or the credentials file")
        self._enter(State.STOPPING, self.fatal.message if self.fatal else "stop requested")
        self.stop_event.set()
        final: dict[str, object] = {}
        if self._stream_started:
            try:
                result = self.client.stream_stop()
                final = result.model_dump()
            except RetakeError as exc:
                log.warning("stream/stop: %s", exc.message)
                final = {"error": exc.message}
        try:
            self.encoder.stop()
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.exception("encoder stop failed")
        if self.chat:
            self.chat.join(5)
        final.update(restarts=self.metrics.restarts, thumbnails=self.metrics.thumbnails,
                     messages_in=self.store.data.messages_in, messages_out=self.store.data.messages_out,
                     ended=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.store.update(last_stream=final, last_error=self.fatal.message if self.fatal else "")
        if self._stream_started:
            self.progress("final stats: " + ", ".join(f"{k}={v}" for k, v in final.items()))
        if self.fatal:
            self.notifier.notify("stopped_on_error", str(self.fatal))
            self.progress(f"error: {self.fatal}")
            self._enter(State.FAILED)
            return self.fatal.exit_code
        self._enter(State.STOPPED)
        return 0
