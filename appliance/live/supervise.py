"""Staying live: the LIVE loop, recovery, the restart budget and holds.

While LIVE, one supervising loop checks the encoder (exit or stall) and the display and sound
servers under it, refreshes the thumbnail, reads status (an ingest drop) and the token's stats;
each call has its own deadline and the loop's heartbeat is beaten between them, so a slow
platform never looks like a stuck controller. Recoveries fetch fresh RTMP keys and back off
exponentially. Every ``stream/start`` — the first one included — counts against a persisted
budget per hour (:mod:`appliance.live.budget`; "spam streaming" is forbidden): past it the
appliance stops the encoder and WAITS in a cool-down (:class:`~appliance.live.waiting.Hold`),
telling the operator once, then tries again when the hour allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..core.errors import MediaError, RetakeConflict, RetakeError, RetakeUnauthorized
from ..retake.client import RetakeClient
from ..retake.credentials import update_token_info
from ..retake.models import RtmpCredentials, StreamStatus
from .machine import State
from .parts import Run
from .waiting import Hold, iso

log = logging.getLogger("appliance.lifecycle")
TOKEN_STATS_EVERY_S = 60.0  # the token's performance read while live (reference section 8)
FIRST_THUMB_AFTER_SCENE_S = 1.0  # a refresh this soon after the live scene is up (the renderer drew it)
STOP_CALL_TIMEOUT_S = 4.0  # stream/stop: one attempt, this deadline (supervisord's grace is 25 s)
WAIT_LIVE_FIRST_POLL_S = 0.25  # waiting for is_live: poll again after this, doubling up to status_poll_s


class Supervisor:
    """The stream's upkeep: stream/start within the budget, recovery, holds, the LIVE loop."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.machine = run.machine
        self.metrics = run.machine.metrics
        self.settings = run.settings
        self.parts = run.parts
        self._consecutive_failures = 0
        self._media_at_start: object = None
        # called on every turn of a hold (the heartbeat while not live), once credentials are known
        self.on_hold_tick: Callable[[], None] | None = None

    # --- holds: alive, unready, saying why ------------------------------------------------

    def hold(self, hold: Hold, *, every_s: float, done: Callable[[], bool] | None = None) -> None:
        """WAITING until ``hold.until`` has passed, or ``done()`` (asked every ``every_s``) is true.
        The operator is told once per hold, across restarts (the hold's key is persisted)."""
        store, wall = self.parts.store, self.run.timing.wall_clock
        self.metrics.hold = hold
        self.machine.enter(State.WAITING, hold.line())
        if store.data.hold_notified != hold.key():
            self.parts.notifier.notify(hold.reason, hold.line(), until=iso(hold.until) if hold.until else None)
            store.update(hold_notified=hold.key())
        while True:
            if self.on_hold_tick is not None:
                self.on_hold_tick()
            if hold.until is not None:
                left = hold.until - wall()
                if left <= 0:
                    break
                self.machine.wait(min(left, every_s))
            else:
                self.machine.wait(every_s)
                if done is not None and done():
                    break
        self.metrics.hold = None
        store.update(hold_notified="")
        self.run.progress(f"done waiting ({hold.reason})")

    def respect_budget(self, why: str) -> None:
        """Return when a stream/start is within the budget; else stop streaming and WAIT in a
        cool-down until it is (the process stays up: no restart policy can turn this into a loop)."""
        until = self.run.budget.blocked_until()
        if until is None:
            return
        self.stop_streaming("cool-down")
        cap = self.settings.recovery.max_restarts_per_hour
        hold = Hold("cooldown", f"{cap} stream starts in the last hour ({why}); not starting another before "
                                f"{iso(until)} to avoid spam streaming — check the host, the network and the ingest",
                    until)
        self.hold(hold, every_s=30.0)

    # --- the stream session -----------------------------------------------------------------

    def stop_streaming(self, why: str) -> None:
        """Encoder first, then one short stream/stop if a session was started."""
        try:
            self.parts.encoder.stop()
        except Exception:
            log.exception("encoder stop failed (%s)", why)
        self.metrics.is_live = False
        if self.run.stream_started:
            self.run.stream_started = False
            try:
                self.run.client.with_limits(timeout_s=STOP_CALL_TIMEOUT_S, retries=0).stream_stop()
            except RetakeError as exc:
                log.warning("stream/stop (%s): %s", why, exc.message)

    def stream_start(self) -> bool:
        """The one place stream/start is called: counted against the budget first (persisted),
        never past it. False (logged) when the budget is spent. The token created on the first
        stream is saved to the credentials file."""
        run = self.run
        if run.budget.blocked_until() is not None:
            log.warning("stream/start not called: the restart budget is spent")
            return False
        count = run.budget.record()
        log.info("stream/start (%d of %d this hour)", count, self.settings.recovery.max_restarts_per_hour)
        started = run.client.stream_start()
        run.stream_started = True
        creds = run.creds
        if started.token and started.token.tokenAddress and creds and not creds.token_address:
            run.creds = creds = creds.with_token_info(started.token.tokenAddress, started.token.ticker or creds.ticker)
            update_token_info(self.settings.credentials_path(), creds.token_address, creds.token_ticker)
            run.progress(f"token {creds.token_ticker} at {creds.token_address} saved to credentials")
        return True

    def start_stream(self) -> None:
        """Steps 2-5: fresh keys, stream/start (within the budget), encoder, wait for is_live."""
        self.respect_budget("going live")
        self.machine.enter(State.RTMP)
        rtmp: RtmpCredentials = self.run.client.rtmp()
        self.machine.enter(State.STREAM_START, f"fresh RTMP key from {rtmp.url}")
        if self.run.chat is not None:
            self.run.chat.baseline()  # before stream/start: the first viewer's message is never history
        if not self.stream_start():
            raise MediaError("the restart budget is spent")  # a 409 handler spent it meanwhile: recover waits
        self.machine.enter(State.ENCODER_START)
        self._media_at_start = self.parts.media_identity()
        self.parts.encoder.start(rtmp.target())
        self.machine.enter(State.WAIT_LIVE)
        self._wait_live()

    def _wait_live(self) -> None:
        cfg, clock, encoder = self.settings.stream, self.run.timing.clock, self.parts.encoder
        deadline = clock() + cfg.live_timeout_s
        # First poll as soon as the encoder has pushed data (no blind 3 s wait), then every poll_s.
        while not encoder.has_output() and clock() < deadline:
            health = encoder.health()
            if health.state in ("exited", "stopped"):
                raise MediaError(f"encoder exited before going live: {health.reason}")
            self.machine.wait(0.1)
        # then again soon (the ingest may take a moment to report the publish), backing off to
        # every status_poll_s: a first poll that came too early no longer costs a whole interval
        interval = WAIT_LIVE_FIRST_POLL_S
        while True:
            status = self.run.client.stream_status()
            self.record_status(status)
            if status.is_live:
                return
            health = encoder.health()
            if health.state != "running":
                raise MediaError(f"not live: encoder {health.state} ({health.reason})")
            if clock() >= deadline:
                raise MediaError(f"not live after {cfg.live_timeout_s:.0f}s although the encoder runs: "
                                 "the ingest refused the stream or the key is stale")
            self.machine.wait(min(interval, cfg.status_poll_s, max(0.0, deadline - clock())))
            interval *= 2

    def record_status(self, status: StreamStatus) -> None:
        m = self.metrics
        m.is_live = status.is_live
        m.viewers = status.viewers
        m.peak_viewers = max(m.peak_viewers, status.viewers)
        m.last_heartbeat = self.run.timing.clock()
        if status.token_address:
            m.token_address = status.token_address

    def upload_thumbnail(self, *, attempts: int = 1, client: RetakeClient | None = None) -> bool:
        """Capture the display and upload it; True when it went up.

        With ``attempts`` > 1 (the mandatory initial thumbnail) a failed capture or upload is
        tried again a second later; the last failure is raised. Otherwise failures are logged
        and the next refresh tries again. ``client``: the one to upload with (the LIVE loop's
        has a short deadline).
        """
        client = client or self.run.client
        for attempt in range(1, attempts + 1):
            try:
                image = self.parts.capture()
                self.machine.beat()
                try:
                    client.update_thumbnail(image, filename="thumbnail.png", content_type="image/png")
                except RetakeConflict:
                    if not self.stream_start():
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
                self.machine.wait(1.0)
        return False

    # --- recovery -----------------------------------------------------------------------------

    def recover(self, reason: str) -> None:
        """Fresh keys -> stream/start -> encoder, until live again; returns in WAIT_LIVE.
        Every attempt is within the restart budget: past it, a cool-down (WAITING) first."""
        self.machine.enter(State.RECOVERING, reason)
        self.metrics.is_live = False
        self.metrics.last_error = reason
        self.parts.store.update(last_error=reason)
        cfg = self.settings.recovery
        while True:
            self.respect_budget(reason)
            if self._consecutive_failures:
                cap = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** (self._consecutive_failures - 1))
                delay = self.run.timing.rng.uniform(cap / 2, cap)
                self.run.progress(f"recovery: waiting {delay:.1f}s before attempt {self._consecutive_failures + 1}")
                self.machine.wait(delay)
            self.metrics.restarts += 1
            try:
                self.start_stream()
            except (MediaError, RetakeError) as exc:
                if not exc.temporary:
                    raise
                self._consecutive_failures += 1
                reason = exc.message
                self.metrics.last_error = reason
                self.machine.enter(State.RECOVERING, reason)
                continue
            self._consecutive_failures = 0
            return

    def _recover_live(self, reason: str) -> None:
        self.recover(reason)
        self.machine.enter(State.LIVE, f"recovered (restart #{self.metrics.restarts})")
        self.upload_thumbnail(client=self._live_client())

    # --- the LIVE loop ------------------------------------------------------------------------

    def _live_client(self) -> RetakeClient:
        """The client of the LIVE loop: one attempt per call, each within the call deadline
        (the loop's next turn is the retry)."""
        return self.run.client.with_limits(timeout_s=self.run.timing.call_timeout_s(), retries=0)

    def stay_live(self) -> None:
        """The LIVE loop, until the stop event (:class:`Stopped`) or a fatal error."""
        cfg, clock, encoder = self.settings.stream, self.run.timing.clock, self.parts.encoder
        scenes = self.parts.scenes
        live = self._live_client()
        next_thumb = clock() + cfg.thumbnail_interval_s
        next_status = clock() + cfg.status_poll_s
        next_media_check = clock() + 1.0
        next_token_stats = clock()
        not_live_count = 0
        while True:
            self.machine.beat()
            if self.run.fatal:
                raise self.run.fatal
            health = encoder.health()
            if health.state != "running":
                self._recover_live(f"encoder {health.state}: {health.reason}")
                next_status = clock() + cfg.status_poll_s
                continue
            now = clock()
            if scenes is not None and scenes.tick():  # the live scene just replaced the starting card
                next_thumb = min(next_thumb, now + FIRST_THUMB_AFTER_SCENE_S)
            if now >= next_media_check:
                # x11grab keeps sending the last frame of a dead X server: only a restart helps
                next_media_check = now + 1.0
                if self.parts.media_identity() != self._media_at_start:
                    self._recover_live("the display or sound server restarted under the encoder")
                    continue
            try:
                if now >= next_status:
                    next_status = now + cfg.status_poll_s
                    status = live.stream_status()
                    self.machine.beat()
                    self.record_status(status)
                    not_live_count = 0 if status.is_live else not_live_count + 1
                    if not_live_count >= 2:
                        not_live_count = 0
                        self._recover_live("the platform reports the stream offline (ingest dropped)")
                        continue
                if now >= next_token_stats:
                    next_token_stats = now + TOKEN_STATS_EVERY_S
                    self._read_token_stats(live)
                    self.machine.beat()
                if now >= next_thumb:
                    next_thumb = now + cfg.thumbnail_interval_s
                    self.upload_thumbnail(client=live)  # a failure is logged; the next refresh tries again
            except RetakeUnauthorized:
                raise
            except RetakeConflict:
                self.run.progress("platform says no active session (409): calling stream/start")
                self.stream_start()
            except RetakeError as exc:
                self.metrics.last_error = exc.message
                log.warning("heartbeat: %s", exc.message)
            self.machine.wait(0.25)

    def _read_token_stats(self, client: RetakeClient) -> None:
        creds = self.run.creds
        address = self.metrics.token_address or (creds.token_address if creds else "")
        if address:
            stats = client.token_stats(address)
            self.metrics.market_cap = stats.market_cap
            self.parts.publish("token", {"address": address, "market_cap": stats.market_cap})

    # --- the chat's calls back ----------------------------------------------------------------

    def on_chat_fatal(self, exc: RetakeError) -> None:
        self.run.fatal = exc
        self.machine.stop_event.set()

    def on_chat_conflict(self) -> None:
        try:
            self.stream_start()
        except RetakeError as exc:
            log.warning("stream/start after 409 failed: %s", exc.message)
