"""The control API's commands, backed by a running :class:`~appliance.live.lifecycle.Lifecycle`."""

from __future__ import annotations

import time
from typing import Any

from ..core.errors import ApplianceError
from ..live.lifecycle import LIVENESS_WINDOW_S, Lifecycle, State
from .metrics import Telemetry

HEARTBEAT_STALE_S = LIVENESS_WINDOW_S  # /health fails when the LIVE loop has not turned for this long


class LiveCommands:
    """The control API's commands, backed by a running :class:`Lifecycle`."""

    def __init__(self, lifecycle: Lifecycle, *, speaker: Any, content: Any, encoder: Any) -> None:
        self.lc, self.speaker, self.content, self.encoder = lifecycle, speaker, content, encoder
        self.telemetry = Telemetry()  # /metrics; app.py subscribes telemetry.on_event to the event bus

    def health(self) -> dict[str, Any]:
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

    def status(self) -> dict[str, Any]:
        m, data = self.lc.metrics, self.lc.store.data
        now = self.lc.clock()
        stats = self.encoder.stats() if hasattr(self.encoder, "stats") else None
        return {"state": m.state.value, "agent": self.lc.settings.agent.name, "verified": m.verified,
                "url": self.lc.settings.stream_url(), "is_live": m.is_live, "viewers": m.viewers,
                "uptime_s": round(now - m.live_since, 1) if m.live_since else 0,
                "restarts": m.restarts, "thumbnails": m.thumbnails, "go_live_s": m.go_live_s,
                "token_address": m.token_address or (self.lc.creds.token_address if self.lc.creds else ""),
                "market_cap": m.market_cap, "messages_in": data.messages_in, "messages_out": data.messages_out,
                "encoder": self.encoder.health().state,
                "fps": getattr(stats, "fps", None), "speed": getattr(stats, "speed", None),
                "stream_starts_last_hour": self.lc.budget.used(),
                "stream_start_budget": self.lc.budget.per_hour,
                "waiting": m.hold.public(self.lc.wall_clock()) if m.hold else None,
                "last_error": m.last_error or "-"}

    def metrics(self) -> str:
        m, data = self.lc.metrics, self.lc.store.data
        stats = self.encoder.stats() if hasattr(self.encoder, "stats") else None
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
            "encoder_fps": ("encoder frames per second", getattr(stats, "fps", None)),
            "encoder_speed": ("encoder speed (1.0 = real time)", getattr(stats, "speed", None)),
            "encoder_dropped_frames_total": ("frames dropped by the encoder", getattr(stats, "drop_frames", None)),
            "encoder_duplicated_frames_total": ("frames duplicated by the encoder", getattr(stats, "dup_frames", None)),
            "encoder_bitrate_kbps": ("encoder output bitrate", getattr(stats, "bitrate_kbps", None)),
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

    def say(self, text: str, *, wait: bool = False, priority: str = "operator") -> dict[str, Any]:
        """Queue speech and return at once (``queued``: 202), or with ``wait`` when it ended."""
        utt = self._show().speak(text, priority)
        if utt.status == "dropped":
            raise ApplianceError(f"the voice queue is full; the line was dropped ({utt.error})",
                                 fix="try again in a moment, or POST /voice {\"flush\": true}")
        self.content.write(f"(says) {text}")
        if not wait:
            return {"queued": True, **utt.summary()}
        utt.wait()
        if utt.status != "spoken":
            raise ApplianceError(f"not spoken: {utt.status} {utt.error}".strip())
        return {"spoken": True, **utt.summary()}

    def voice(self, *, flush: bool = False, interrupt: bool = False, volume: float | None = None,
              mute: bool | None = None) -> dict[str, Any]:
        """Flush the queue, stop the current utterance, set the sink's volume or mute."""
        from ..media.audio import set_sink_level
        queue = self._show().voice
        if queue is None:
            raise ApplianceError("no voice: PulseAudio is not available", fix="run under `appliance up`")
        result: dict[str, Any] = {"flushed": queue.flush() if flush else 0,
                                  "interrupted": queue.interrupt() if interrupt else False}
        if volume is not None or mute is not None:
            result.update(set_sink_level(self.lc.settings.stream.sink, volume=volume, mute=mute))
        return {**result, "pending": queue.pending()}

    def scene(self, name: str) -> dict[str, Any]:
        self._show().set_scene(name)
        return {"scene": name}

    def show(self, text: str) -> dict[str, Any]:
        self.content.write(text)
        if self.speaker is not None:
            self.speaker.scene.show(text)
        return {"shown": True}

    def _show(self) -> Any:
        """The show (scene + voice, :class:`appliance.live.show.Show`); 503 without one."""
        if self.speaker is None:
            raise ApplianceError("no scene or voice in this controller", fix="run under `appliance up`")
        return self.speaker

    def _not_open(self) -> ApplianceError:
        return ApplianceError("chat is not open yet",
                              fix=f"wait until the state is live (now {self.lc.metrics.state.value})")

    def chat(self, message: str) -> dict[str, Any]:
        if self.lc.chat is None:
            raise self._not_open()
        if not self.lc.chat.send(message):
            raise ApplianceError("the platform did not take the message; see the log")
        return {"sent": True}

    def reply(self, message_id: str, text: str, routes: list[str] | None = None) -> dict[str, Any]:
        if self.lc.chat is None:
            raise self._not_open()
        return self.lc.chat.reply_to(message_id, text, routes)

    def stop(self) -> dict[str, Any]:
        self.lc.request_stop()
        return {"stopping": True}


CHAT_KINDS = ("chat", "tip", "trade", "follow", "reply")


class OperatorCommands(LiveCommands):
    """:class:`LiveCommands` plus what the console and the MCP tools add: go live on demand,
    chat read from the event bus, remembered viewers, the on-screen terminal, the preview, and
    the console's page state. Also the in-process :class:`appliance.control.mcp.Operator`."""

    def __init__(self, lifecycle: Lifecycle, *, speaker: Any, content: Any, encoder: Any, bus: Any,
                 terminal: Any = None, preview: Any = None) -> None:
        super().__init__(lifecycle, speaker=speaker, content=content, encoder=encoder)
        self.bus, self.terminal_session, self.preview = bus, terminal, preview

    def status(self) -> dict[str, Any]:
        stats = self.encoder.stats() if hasattr(self.encoder, "stats") else None
        return {**super().status(), "bitrate_kbps": getattr(stats, "bitrate_kbps", None),
                "dropped_frames": getattr(stats, "drop_frames", None)}

    def go_live(self, wait_s: float = 60.0) -> dict[str, Any]:
        """Start the stream if the controller stands by; wait up to ``wait_s`` for LIVE."""
        self.lc.request_go_live()
        deadline = self.lc.clock() + max(0.0, min(wait_s, 120.0))
        while self.lc.metrics.state is not State.LIVE and self.lc.clock() < deadline:
            if self.lc.metrics.state in (State.STOPPING, State.STOPPED, State.FAILED):
                break
            time.sleep(0.2)
        return self.status()

    def read_chat(self, since: int | None = None, limit: int = 50) -> dict[str, Any]:
        """Chat items from the event bus after event id ``since`` (None: the latest ``limit``)."""
        limit = max(1, min(int(limit), 200))
        events, gap = self.bus.since(since if since is not None else 0)
        items = [chat_item(e) for e in events if e.kind in CHAT_KINDS]
        more = since is not None and len(items) > limit
        items = items[:limit] if since is not None else items[-limit:]
        cursor = items[-1]["event_id"] if more else (events[-1].id if events else (since or self.bus.last_id))
        return {"cursor": cursor, "items": items, "more": more,
                "gap": {"from_event_id": gap[0], "to_event_id": gap[1]} if gap and since is not None else None}

    def viewers(self, limit: int = 20) -> dict[str, Any]:
        from ..chat.memory import list_viewers
        rows = list_viewers(self.lc.settings.layout.memory_db, limit=max(1, min(int(limit), 100)))
        return {"viewers": rows, "count": len(rows)}

    def terminal(self, *, text: str | None = None, enter: bool = True, keys: list[str] | None = None,
                 lines: int = 40) -> dict[str, Any]:
        """Type ``text`` and/or press ``keys`` in the on-screen terminal, then read its pane."""
        if self.terminal_session is None:
            raise ApplianceError("no on-screen terminal in this controller", fix="run under `appliance up`")
        done: dict[str, Any] = {}
        if text:
            done.update(self.terminal_session.send(text, enter=enter))
        if keys:
            done.update(self.terminal_session.keys(keys))
        if text or keys:
            time.sleep(0.3)  # let the shell echo and start answering before reading
        return {**done, "screen": self.terminal_session.read(lines)}

    def screenshot(self) -> bytes:
        if self.preview is None:
            raise ApplianceError("no display preview in this controller", fix="run under `appliance up`")
        return self.preview.frame()[1]

    def speech(self) -> dict[str, Any]:
        queue = getattr(self.speaker, "voice", None) if self.speaker is not None else None
        if queue is None:
            return {"speaking": None, "pending": 0}
        current = queue.current()
        return {"speaking": current.text if current is not None else None, "pending": queue.pending()}

    def scenes(self) -> tuple[list[str], str | None]:
        if self.speaker is None:
            return [], None
        return self.speaker.scenes(), self.speaker.scene.snapshot().scene


def chat_item(event: Any) -> dict[str, Any]:
    """One event-bus chat event as ``read_chat`` returns it (viewer name and id, never more)."""
    data = event.data or {}
    if event.kind == "reply":
        return {"event_id": event.id, "kind": "reply", "time": round(event.time, 3), "text": data.get("text"),
                "to": list(data.get("to") or []), "routes": list(data.get("routes") or [])}
    user = data.get("user") or {}
    return {"event_id": event.id, "kind": event.kind, "time": round(event.time, 3), "id": data.get("id"),
            "name": user.get("name"), "user_id": user.get("user_id"), "text": data.get("text"),
            "amount": data.get("amount"), "answerable": bool(data.get("answer"))}
