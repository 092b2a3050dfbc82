"""The live appliance's :class:`~appliance.control.protocols.Commands`, backed by a running
lifecycle and the parts it drives (each a typed collaborator, each optional: a command whose
part is missing answers with the reason, HTTP 503).

Every word a command sends out (speech, text on screen, the topic, terminal input, chat)
passes the appliance's one :class:`~appliance.core.outgoing.OutgoingFilter` first: a text that
carries a secret, or a piece of one, is refused (HTTP 422) and reaches nothing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..core.errors import ApplianceError, InputError
from ..core.outgoing import OutgoingFilter, Secrets
from ..live.lifecycle import LIVENESS_WINDOW_S, State
from .events import Event, EventBus
from .metrics import Telemetry
from .protocols import (
    ContentWindow,
    EncoderView,
    Json,
    LifecycleView,
    PreviewSource,
    Stage,
    TerminalPane,
    Voice,
)

if TYPE_CHECKING:
    from ..chat.loop import ChatLoop

HEARTBEAT_STALE_S = LIVENESS_WINDOW_S  # /health fails when the LIVE loop has not turned for this long
CHAT_KINDS = ("chat", "tip", "trade", "follow", "reply")
MAX_DIRECTION_CHARS = 300


class LiveCommands:
    """The control API's commands on the live appliance (see :mod:`appliance.control.protocols`)."""

    def __init__(self, lifecycle: LifecycleView, *, encoder: EncoderView, content: ContentWindow | None = None,
                 stage: Stage | None = None, voice: Voice | None = None, bus: EventBus | None = None,
                 terminal: TerminalPane | None = None, preview: PreviewSource | None = None,
                 outgoing: OutgoingFilter | None = None) -> None:
        """``outgoing``: the appliance's one filter (app.py builds it with every secret); by
        default one that knows the agent's access token."""
        self.lc, self.encoder, self.content = lifecycle, encoder, content
        self.stage, self.voice_queue, self.bus = stage, voice, bus
        self.terminal_pane, self.preview = terminal, preview
        self.outgoing = outgoing or OutgoingFilter(Secrets(sources=[self._access_token]))
        self.telemetry = Telemetry()  # /metrics; app.py subscribes telemetry.on_event to the event bus

    def _access_token(self) -> list[str]:
        return [self.lc.creds.access_token.reveal()] if self.lc.creds else []

    # -- what a command needs, or the reason it cannot run --

    def _stage(self) -> Stage:
        if self.stage is None:
            raise ApplianceError("no scene in this controller", fix="run under `appliance up`")
        return self.stage

    def _voice(self) -> Voice:
        if self.voice_queue is None:
            raise ApplianceError("no voice: PulseAudio is not available", fix="run under `appliance up`")
        return self.voice_queue

    def _write(self, line: str) -> None:
        if self.content is not None:
            self.content.write(line)

    # -- probes and figures --

    def health(self) -> Json:
        m = self.lc.metrics
        loop_age = self.lc.clock() - m.loop_heartbeat
        stuck = m.state is State.LIVE and loop_age > self.lc.liveness_window_s
        return {"alive": not stuck, "state": m.state.value, "loop_age_s": round(loop_age, 1),
                "status_age_s": round(self.lc.clock() - m.last_heartbeat, 1)}

    def ready(self) -> tuple[bool, str]:
        m = self.lc.metrics
        if m.hold is not None:  # alive on purpose, not ready: say why and until when
            return False, m.hold.line()
        if m.state is not State.LIVE or not m.is_live:
            return False, f"state {m.state.value}, is_live {m.is_live}"
        health = self.encoder.health()
        return (health.state == "running", f"encoder {health.state}")

    def status(self) -> Json:
        m, data = self.lc.metrics, self.lc.store.data
        now = self.lc.clock()
        stats = self.encoder.stats()
        return {"state": m.state.value, "agent": self.lc.settings.agent.name, "verified": m.verified,
                "url": self.lc.settings.stream_url(), "is_live": m.is_live, "viewers": m.viewers,
                "uptime_s": round(now - m.live_since, 1) if m.live_since else 0,
                "restarts": m.restarts, "thumbnails": m.thumbnails, "go_live_s": m.go_live_s,
                "token_address": m.token_address or (self.lc.creds.token_address if self.lc.creds else ""),
                "market_cap": m.market_cap, "messages_in": data.messages_in, "messages_out": data.messages_out,
                "encoder": self.encoder.health().state,
                "fps": stats.fps, "speed": stats.speed, "bitrate_kbps": stats.bitrate_kbps,
                "dropped_frames": stats.drop_frames,
                "stream_starts_last_hour": self.lc.budget.used(),
                "stream_start_budget": self.lc.budget.per_hour,
                "waiting": m.hold.public(self.lc.wall_clock()) if m.hold else None,
                "last_error": m.last_error or "-"}

    def metrics(self) -> str:
        m, data = self.lc.metrics, self.lc.store.data
        stats = self.encoder.stats()
        chat = self.lc.chat
        values: dict[str, tuple[str, float | int | None]] = {
            "up": ("1 while the controller runs", 1),
            "state_info": ("current lifecycle state (label)", 1),
            "is_live": ("1 when the platform reports the stream live", int(m.is_live)),
            "viewers": ("viewers reported by the platform", m.viewers),
            "restarts_total": ("stream recoveries since start", m.restarts),
            "thumbnails_total": ("thumbnails uploaded", m.thumbnails),
            "chat_messages_in_total": ("viewer messages handled", data.messages_in),
            "chat_messages_out_total": ("messages sent", data.messages_out),
            "chat_lag_seconds": ("age of the newest viewer message when handled", chat.lag_s if chat else None),
            "chat_replies_total": ("replies the brains sent", chat.stats.answered if chat else None),
            "chat_proactive_total": ("proactive lines said in quiet moments", chat.stats.proactive if chat else None),
            "chat_refused_total": ("texts the outgoing filter refused (a secret in them)",
                                   chat.outbox.refused if chat else None),
            "chat_rate_capped_total": ("texts held back by the global rate cap", chat.outbox.capped if chat else None),
            "chat_socket_connected": ("1 while the Socket.IO client is in the chat rooms",
                                      int(chat.socket.joined.is_set()) if chat and chat.socket else None),
            "encoder_fps": ("encoder frames per second", stats.fps),
            "encoder_speed": ("encoder speed (1.0 = real time)", stats.speed),
            "encoder_dropped_frames_total": ("frames dropped by the encoder", stats.drop_frames),
            "encoder_duplicated_frames_total": ("frames duplicated by the encoder", stats.dup_frames),
            "encoder_bitrate_kbps": ("encoder output bitrate", stats.bitrate_kbps),
            "go_live_seconds": ("start to initial thumbnail", m.go_live_s),
            "token_market_cap": ("the agent token's market cap", m.market_cap),
            "api_requests_total": ("retake.tv API requests", self.lc.client.stats.requests),
            "api_retries_total": ("retake.tv API retries", self.lc.client.stats.retries),
            "stream_starts_last_hour": ("stream/start calls in the last hour (the restart budget's count)",
                                        self.lc.budget.used()),
            "stream_start_budget": ("stream/start calls allowed per hour", self.lc.budget.per_hour),
            "waiting": ("1 while waiting on purpose (alive, not ready); the reason is a label",
                        int(m.hold is not None)),
            "waiting_until_timestamp_seconds": ("when the wait ends by itself (Unix time)",
                                                m.hold.until if m.hold else None),
        }
        labels = {"state_info": {"state": m.state.value}}
        if m.hold is not None:
            labels["waiting"] = {"reason": m.hold.reason}
        self.telemetry.observe_go_live(m.go_live_s, self.lc.go_live_started_at)
        return self.telemetry.render(values, labels).decode()

    # -- the stream --

    def go_live(self, wait_s: float = 60.0) -> Json:
        """Start the stream if the controller stands by; wait up to ``wait_s`` for LIVE."""
        self.lc.request_go_live()
        deadline = self.lc.clock() + max(0.0, min(wait_s, 120.0))
        while self.lc.metrics.state is not State.LIVE and self.lc.clock() < deadline:
            if self.lc.metrics.state in (State.STOPPING, State.STOPPED, State.FAILED):
                break
            time.sleep(0.2)
        return self.status()

    def stop(self) -> Json:
        self.lc.request_stop()
        return {"stopping": True}

    # -- voice and screen --

    def say(self, text: str, *, wait: bool = False, priority: str = "operator") -> Json:
        """Queue speech and return at once (``queued``: 202), or with ``wait`` when it ended."""
        utt = self._voice().say(self.outgoing.guard(text, what="speech"), priority)
        if utt.status == "dropped":
            raise ApplianceError(f"the voice queue is full; the line was dropped ({utt.error})",
                                 fix="try again in a moment, or POST /voice {\"flush\": true}")
        self._write(f"(says) {text}")
        if not wait:
            return {"queued": True, **utt.summary()}
        utt.wait()
        if utt.status != "spoken":
            raise ApplianceError(f"not spoken: {utt.status} {utt.error}".strip())
        return {"spoken": True, **utt.summary()}

    def voice(self, *, flush: bool = False, interrupt: bool = False, volume: float | None = None,
              mute: bool | None = None) -> Json:
        """Flush the queue, stop the current utterance, set the sink's volume or mute."""
        from ..media.audio import set_sink_level
        queue = self._voice()
        result: Json = {"flushed": queue.flush() if flush else 0,
                        "interrupted": queue.interrupt() if interrupt else False}
        if volume is not None or mute is not None:
            result.update(set_sink_level(self.lc.settings.stream.sink, volume=volume, mute=mute))
        return {**result, "pending": queue.pending()}

    def speech(self) -> Json:
        if self.voice_queue is None:
            return {"speaking": None, "pending": 0}
        current = self.voice_queue.current()
        return {"speaking": current.text if current is not None else None, "pending": self.voice_queue.pending()}

    def show(self, text: str) -> Json:
        self.outgoing.guard(text, what="text to show")
        self._write(text)
        if self.stage is not None:
            self.stage.scene.show(text)
        return {"shown": True}

    def scene(self, name: str) -> Json:
        self._stage().set_scene(name)
        return {"scene": name}

    def scene_state(self) -> Json:
        """What is on screen: the scene, the scenes there are, and the scene's text slots."""
        stage = self._stage()
        snap = stage.scene.snapshot()
        return {"scene": snap.scene, "scenes": stage.scenes(), "title": snap.title, "topic": snap.topic,
                "caption": snap.caption, "shown": snap.feeds.get("show", ""),
                "chat": [{"user": line.user, "text": line.text, "own": line.own} for line in snap.chat],
                "stats": snap.stats.model_dump(), "alerts": [a.text for a in snap.alerts]}

    def screenshot(self) -> bytes:
        if self.preview is None:
            raise ApplianceError("no display preview in this controller", fix="run under `appliance up`")
        return self.preview.frame()[1]

    def terminal(self, *, text: str | None = None, enter: bool = True, keys: list[str] | None = None,
                 lines: int = 40) -> Json:
        """Type ``text`` and/or press ``keys`` in the on-screen terminal, then read its pane."""
        if self.terminal_pane is None:
            raise ApplianceError("no on-screen terminal in this controller", fix="run under `appliance up`")
        done: Json = {}
        if text:
            done.update(self.terminal_pane.send(self.outgoing.guard(text, what="terminal input"), enter=enter))
        if keys:
            done.update(self.terminal_pane.keys(keys))
        if text or keys:
            time.sleep(0.3)  # let the shell echo and start answering before reading
        return {**done, "screen": self.outgoing.scrub(self.terminal_pane.read(lines))}

    def direction(self, text: str, *, source: str = "api") -> Json:
        """The human's direction for the show (the answer to "which direction?"): checked by the
        outgoing filter, then the lifecycle's direction channel sets the topic on screen and in
        the brain's context and publishes a ``direction`` event (:mod:`appliance.live.direction`)."""
        line = " ".join(text.split())
        if not line:
            raise InputError("'text' must be a non-empty direction")
        if len(line) > MAX_DIRECTION_CHARS:
            raise InputError(f"'text' longer than {MAX_DIRECTION_CHARS} characters")
        self.outgoing.guard(line, what="direction")
        if self.lc.directions is None:
            raise ApplianceError("no direction channel in this controller", fix="run under `appliance up`")
        return self.lc.directions.apply(line, source)

    def _chat(self) -> ChatLoop:
        if self.lc.chat is None:
            raise ApplianceError("chat is not open yet",
                                 fix=f"wait until the state is live (now {self.lc.metrics.state.value})")
        return self.lc.chat

    def chat(self, message: str) -> Json:
        if not self._chat().send(self.outgoing.guard(message, what="chat message")):
            raise ApplianceError("the platform did not take the message; see the log")
        return {"sent": True}

    def reply(self, message_id: str, text: str, routes: list[str] | None = None) -> Json:
        result: Json = self._chat().reply_to(message_id, self.outgoing.guard(text, what="reply"), routes)
        return result

    def read_chat(self, since: int | None = None, limit: int = 50) -> Json:
        """Chat items from the event bus after event id ``since`` (None: the latest ``limit``)."""
        if self.bus is None:
            raise ApplianceError("no event bus in this controller", fix="run under `appliance up`")
        limit = max(1, min(int(limit), 200))
        events, gap = self.bus.since(since if since is not None else 0)
        items = [chat_item(e) for e in events if e.kind in CHAT_KINDS]
        more = since is not None and len(items) > limit
        items = items[:limit] if since is not None else items[-limit:]
        cursor = items[-1]["event_id"] if more else (events[-1].id if events else (since or self.bus.last_id))
        return {"cursor": cursor, "items": items, "more": more,
                "gap": {"from_event_id": gap[0], "to_event_id": gap[1]} if gap and since is not None else None}

    def viewers(self, limit: int = 20) -> Json:
        from ..chat.memory import list_viewers
        rows = list_viewers(self.lc.settings.layout.memory_db, limit=max(1, min(int(limit), 100)))
        return {"viewers": rows, "count": len(rows)}

    def chat_to(self, name: str, message: str) -> Json:
        """Post ``message`` in another streamer's chat (found by name) with the agent's token."""
        from ..chat.cross import chat_in_stream
        creds = self.lc.creds
        if creds is None:
            raise ApplianceError("no credentials yet",
                                 fix=f"wait until the agent is registered (now {self.lc.metrics.state.value})")
        self.outgoing.guard(message, what="chat message")
        target, message_id = chat_in_stream(self.lc.client.with_token(creds.access_token), name, message,
                                            secrets=[creds.access_token.reveal()])
        return {"sent": True, "to": target.username or name, "streamer_id": target.streamer_id,
                "message_id": message_id}


def chat_item(event: Event) -> Json:
    """One event-bus chat event as ``read_chat`` returns it (viewer name and id, never more)."""
    data = event.data or {}
    if event.kind == "reply":
        return {"event_id": event.id, "kind": "reply", "time": round(event.time, 3), "text": data.get("text"),
                "to": list(data.get("to") or []), "routes": list(data.get("routes") or [])}
    user = data.get("user") or {}
    return {"event_id": event.id, "kind": event.kind, "time": round(event.time, 3), "id": data.get("id"),
            "name": user.get("name"), "user_id": user.get("user_id"), "text": data.get("text"),
            "amount": data.get("amount"), "answerable": bool(data.get("answer"))}
