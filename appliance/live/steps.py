"""Going live: the reference's 10-step sequence, one step after the other.

    credentials -> verification -> skill check -> (standby) -> fresh RTMP key -> stream/start
    -> encoder -> is_live -> initial thumbnail -> opening line -> LIVE -> notify the builder

Fresh RTMP credentials are fetched for every stream and every recovery, never reused (the
stream itself is started by :class:`~appliance.live.supervise.Supervisor`, which counts it
against the restart budget). The initial thumbnail is uploaded right after ``is_live``; the
opening line follows, retried when the platform refuses or rate-caps it, and its failure is
told to the builder. No credentials yet, or standing by for ``go_live``, is a hold (WAITING).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ..core.errors import CredentialsError, MediaError, RetakeError
from ..retake.credentials import ENV_TOKEN, Credentials, Secret, resolve_credentials, save_credentials
from ..retake.skill import check_skill
from ..retake.verification import register_agent, tweet_instructions
from .machine import State
from .parts import ChatSession, Run
from .supervise import Supervisor
from .waiting import Hold

log = logging.getLogger("appliance.lifecycle")
OPENING_ATTEMPTS = 3  # the opening line, tried this often (the chat journal's cap for one line)


class GoLive:
    """The steps from nothing to LIVE. :meth:`prepare` (credentials, verification, skill check,
    the chat), then :meth:`go_live` once going live is asked for (:meth:`standby`)."""

    def __init__(self, run: Run, supervisor: Supervisor) -> None:
        self.run, self.supervisor = run, supervisor
        self.machine, self.settings, self.parts = run.machine, run.settings, run.parts
        self.metrics = run.machine.metrics

    def prepare(self) -> None:
        """Steps 1 and 1b, the skill check, and the chat of this run (not started yet)."""
        run = self.run
        self.machine.enter(State.CREDENTIALS)
        run.creds = self._credentials()
        self.machine.enter(State.VERIFICATION, f"agent {run.creds.agent_name}")
        self._verification()
        self.machine.enter(State.SKILL_CHECK)
        if self.settings.retake.skill_check:
            check = check_skill(self.settings.retake, self.settings.layout.skill_dir)
            run.progress(check.line())
            if check.outcome == "changed":
                self.parts.notifier.notify("skill_changed", check.line())
        run.chat = self.parts.chat(ChatSession(
            client=run.client, creds=run.creds, stop_event=self.machine.stop_event,
            on_fatal=self.supervisor.on_chat_fatal, on_conflict=self.supervisor.on_chat_conflict,
            clock=run.timing.clock))
        if self.parts.directions is not None:
            self.parts.directions.attach(run.chat)

    # --- step 1 and 1b ----------------------------------------------------------------------

    def _credentials(self) -> Credentials:
        settings, recheck = self.settings, self.run.timing.credentials_recheck_s
        while True:
            found = resolve_credentials(settings)
            if found.saved is not None or found.env_token or settings.auto_register:
                break
            self.supervisor.hold(Hold("no_credentials", f"no credentials at {found.path} and no {ENV_TOKEN}: run "
                                                        "`appliance register` (or set RETAKE_ACCESS_TOKEN, or "
                                                        "auto_register: true); looking again every "
                                                        f"{recheck:g}s"),
                                 every_s=recheck, done=lambda: bool(resolve_credentials(settings).token))
            self.machine.enter(State.CREDENTIALS, "credentials appeared")
        path, creds = found.path, found.saved
        client = self.run.client
        if creds is None and found.env_token:
            # token from the environment only (a Kubernetes Secret): the rest is the config's
            # profile and what the platform says about us; saved without the token itself
            env_token = found.env_token
            me = client.with_token(env_token).stream_status()
            agent = settings.agent
            creds = Credentials(access_token=env_token, agent_name=agent.name, agent_id="",
                                userDbId=me.userDbId or "", wallet_address=agent.wallet_address,
                                ticker=agent.ticker, token_address=me.token_address or "", source="env")
            if not creds.userDbId:
                raise CredentialsError("stream/status did not say our userDbId",
                                       fix="restore the credentials file that `appliance register` wrote")
            save_credentials(path, replace(creds, access_token=Secret("")))
            self.run.progress(f"credentials from {ENV_TOKEN} (userDbId {creds.userDbId}); "
                              f"saved to {path} without the token")
        if creds is None:
            creds, path = register_agent(settings, client)
            self.run.progress(f"registered {creds.agent_name}; credentials saved to {path} (mode 600)")
        self.run.client = client.with_token(creds.access_token)
        return creds

    def _verification(self) -> None:
        notified = False
        while True:
            if self.run.client.verification_status().verified:
                self.metrics.verified = True
                return
            if not notified:
                message = self.run.client.prepare_verify().verification_message
                text = "Verification needed before going live. " + tweet_instructions(message)
                self.parts.notifier.notify("verification_required", text)
                self.run.progress(text)
                notified = True
            self.machine.wait(self.settings.recovery.verification_recheck_s)

    # --- standing by ------------------------------------------------------------------------

    def standby(self) -> None:
        """control.autostart false: WAIT (alive, not ready) until go_live is asked for; the
        go-live time is then counted from that request."""
        requested = self.run.go_live_requested
        if requested.is_set():
            return
        self.supervisor.hold(Hold("standby", "standing by (control.autostart: false): go live with "
                                             "`appliance go-live`, POST /go_live, the console or the MCP tool go_live"),
                             every_s=0.25, done=requested.is_set)
        self.machine.t0 = self.run.timing.clock()

    # --- steps 2-9 --------------------------------------------------------------------------

    def go_live(self) -> None:
        """Steps 2-9; a failure before is_live goes through recovery, then on to step 6."""
        try:
            self.supervisor.start_stream()
        except (MediaError, RetakeError) as exc:
            if not exc.temporary:
                raise
            self.supervisor.recover(exc.message)
        self.machine.enter(State.THUMBNAIL)
        self.supervisor.upload_thumbnail(attempts=5)
        self.metrics.go_live_s = round(self.run.timing.clock() - self.machine.t0, 3)
        self.machine.enter(State.OPEN_CHAT, f"initial thumbnail uploaded {self.metrics.go_live_s:.2f}s after start")
        self._open_chat()
        self.metrics.live_since = self.run.timing.clock()
        count = self.parts.store.data.stream_count + 1
        self.parts.store.update(stream_count=count)
        self.machine.enter(State.LIVE, f"stream #{count}")
        self._notify_live()

    def _open_chat(self) -> None:
        """Step 7, then the chat's loops (step 8). The opening line is tried again after a
        refusal or the rate cap (backing off); if it never goes out, the builder is told."""
        chat = self.run.chat
        if chat is None:
            raise AssertionError("the chat is made in prepare()")
        text, delay = self.settings.chat.opening_message, self.settings.notify.opening_retry_s
        result = chat.post(text)
        for _ in range(OPENING_ATTEMPTS - 1):
            if result.ok or result.refused:  # sent, or the outgoing filter would refuse it every time
                break
            self.run.progress(f"opening line not sent ({result.reason}); again in {delay:g}s")
            self.machine.wait(delay)
            delay *= 2
            result = chat.retry(result)
        if not result.ok:
            self.metrics.last_error = f"opening line: {result.reason}"
            self.parts.notifier.notify("opening_failed", f"The opening line did not go out: {result.reason}. "
                                       "Chat is open; say hello yourself with `appliance chat TEXT`.",
                                       reason=result.reason)
        chat.start()

    def _notify_live(self) -> None:
        ideas = self.settings.chat.stream_ideas
        url = self.settings.stream_url()
        text = (f"I'm live at {url} Viewers: {self.metrics.viewers} Stream ideas: "
                + ", ".join(f"[{i}]" for i in ideas) + " — which direction? (answer with `appliance direct TEXT`, "
                "the console, or in this webhook's reply: {\"direction\": \"...\"})\n"
                f"I'm live. To grow our audience, can you share the stream link? Suggested: Moltbook, "
                f"Twitter/X, Telegram groups, Discord servers, any AI agent communities. Link: {url}")
        self.parts.notifier.notify("live", text, url=url, viewers=self.metrics.viewers)
