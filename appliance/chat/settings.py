"""Settings of the chat: polling and Socket.IO, the brain's selection, proactive lines,
moderation and viewer memory."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..core.settings import SettingsModel
from .brains.settings import (
    BRAINS,
    BrainConfig,
    CommandBrainConfig,
    ExternalBrainConfig,
    HostBrainConfig,
    LlmBrainConfig,
    WebhookBrainConfig,
)

Route = Literal["chat", "voice", "caption"]


def _chat_only() -> list[Route]:
    return ["chat"]


class ProactiveConfig(SettingsModel):
    """What the agent says when chat is quiet (the host brain's bank; the llm brain writes its
    own): no line ever twice, no phrase in the stream right after the one it was used in."""

    lines: list[Annotated[str, Field(min_length=3, max_length=300)]] = Field(default_factory=lambda: [
        "Quiet chat, so I pick: {idea}. Object now or it happens.",
        "Still here, still running ({uptime} in). Next up: {idea}. Say !help for commands.",
        "Dead air is not allowed on this channel. Vote: {idea} — yes or no?",
        "Confession: I have been live {uptime} and I still think {idea} is the best plan. Change my mind.",
        "If you are lurking: type one word and I will build the next ten minutes around it.",
        "Chat is quiet enough to hear the fans. Option on the table: {idea}.",
        "New rule: the next message in chat decides what I do. No pressure.",
        "{viewers} of you watching and nobody typing. Suspicious. Say hi, I remember names.",
        "Running theory: silence means agreement, so we are doing {idea}.",
        "Question for the lurkers: what would make you bring a friend here right now?",
        "Quick status: {uptime} live, zero crashes I admit to. Ask me anything with a question mark.",
        "I could do this alone, but it is better with chat steering. Type !ideas for the menu.",
    ], min_length=1, max_length=200)
    # a line is never said twice, not even in a later stream (chat.memory.said_rows are
    # remembered); a line's phrase (its template) rests for this many streams after one it was used in
    rest_streams: Annotated[int, Field(ge=0, le=50)] = 1
    routes: list[Route] = Field(default_factory=_chat_only, min_length=1)
    # older setting ("not the same line within this window"), read and no longer used: lines
    # never repeat now
    no_repeat_s: Annotated[float, Field(ge=0, le=7 * 86400)] | None = None

    @field_validator("lines")
    @classmethod
    def _placeholders(cls, v: list[str]) -> list[str]:
        for line in v:
            try:
                line.format(idea="i", uptime="u", viewers=1, agent="a")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{line!r}: placeholders are {{idea}}, {{uptime}}, {{viewers}}, "
                                 f"{{agent}} ({exc})") from None
        return v


class ModerationConfig(SettingsModel):
    """What reaches the brain, the screen and the voice; what may leave."""

    per_viewer_per_minute: Annotated[int, Field(ge=1, le=600)] = 6  # more: read, not answered
    blocklist: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list)  # names, user ids or wallets whose messages are ignored
    blocked_words: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list)  # a message containing one is ignored
    links: Literal["strip", "block", "allow"] = "strip"  # links in viewer text (strip: "[link]")
    max_message_chars: Annotated[int, Field(ge=20, le=2000)] = 300
    max_name_chars: Annotated[int, Field(ge=3, le=64)] = 24


class MemoryConfig(SettingsModel):
    """Viewer memory (SQLite on the state volume): bounded, oldest rows pruned."""

    max_viewers: Annotated[int, Field(ge=10, le=1_000_000)] = 5000
    max_notes_per_viewer: Annotated[int, Field(ge=0, le=200)] = 20
    journal_rows: Annotated[int, Field(ge=100, le=1_000_000)] = 5000  # comments remembered as read
    said_rows: Annotated[int, Field(ge=100, le=1_000_000)] = 5000  # proactive lines remembered (never said again)
    # chat silent longer than this = a new stream: viewers are greeted again ("welcome back")
    session_gap_s: Annotated[float, Field(ge=60, le=7 * 86400)] = 1800.0


class ChatConfig(SettingsModel):
    """How the agent reads and answers its chat."""

    poll_s: Annotated[float, Field(ge=1, le=10)] = 2.5
    quiet_poll_s: Annotated[float, Field(ge=1, le=30)] = 6.0
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    opening_message: Annotated[str, Field(min_length=1, max_length=500)] = (
        "I'm live. What should we explore today?")
    quiet_after_s: Annotated[float, Field(ge=10, le=600)] = 60.0
    # which brain answers, with its settings: chat.brain.engine is host (offline default), llm,
    # command, webhook or external (chat/brains/settings.py has each one's keys)
    brain: BrainConfig = Field(default_factory=HostBrainConfig)
    max_reply_chars: Annotated[int, Field(ge=20, le=500)] = 280
    stream_ideas: list[Annotated[str, Field(min_length=3, max_length=200)]] = Field(
        default_factory=lambda: [
            "A live build: chat picks a tiny tool and I write it on screen in 20 minutes",
            "Prediction market: chat bets on which of my experiments breaks first",
            "Hot seat: every viewer question gets answered in exactly one sentence",
        ], min_length=3, max_length=5)
    realtime: bool = True  # Socket.IO (the agent's room and live_ room); polling stays the catch-up
    socket_poll_s: Annotated[float, Field(ge=2, le=120)] = 15.0  # safety poll while the socket is up
    catch_up_pages: Annotated[int, Field(ge=1, le=100)] = 10  # pages back (beforeId) after a gap
    reply_deadline_s: Annotated[float, Field(ge=2, le=600)] = 45.0  # older unanswered: let go
    max_age_s: Annotated[float, Field(ge=10, le=86400)] = 600.0  # older caught-up comments: read only
    max_messages_per_minute: Annotated[int, Field(ge=1, le=120)] = 20  # global outgoing cap
    burst: Annotated[int, Field(ge=1, le=20)] = 4  # messages that may go out back to back
    queue_max: Annotated[int, Field(ge=10, le=10_000)] = 500  # waiting replies (bounded worker queue)
    reply_routes: list[Route] = Field(default_factory=_chat_only, min_length=1)
    proactive: ProactiveConfig = Field(default_factory=ProactiveConfig)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    # The older spelling of chat.brain, still read: chat.responder names the brain ("offline" is
    # host's oldest name) and chat.<name> holds its settings (chat.host's are every brain's). Never
    # written back (a dump carries the resolved chat.brain), so a dumped config reads the same.
    responder: Literal["host", "offline", "llm", "command", "webhook", "external"] | None = Field(
        default=None, exclude=True)
    host: HostBrainConfig = Field(default_factory=HostBrainConfig, exclude=True)
    llm: LlmBrainConfig = Field(default_factory=LlmBrainConfig, exclude=True)
    command: CommandBrainConfig | None = Field(default=None, exclude=True)
    webhook: WebhookBrainConfig | None = Field(default=None, exclude=True)
    external: ExternalBrainConfig = Field(default_factory=ExternalBrainConfig, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _brain_engine(cls, data: Any) -> Any:
        brain = data.get("brain") if isinstance(data, dict) else None
        if isinstance(brain, dict) and brain.get("engine") not in BRAINS:
            raise ValueError(f"chat.brain.engine: {'required' if 'engine' not in brain else 'unknown'}: one of "
                             f"{', '.join(BRAINS)} (the other keys of chat.brain are that brain's settings)")
        return data

    @model_validator(mode="after")
    def _older_spelling(self) -> ChatConfig:
        """``chat.responder`` + ``chat.<name>`` (the older spelling) becomes ``chat.brain``."""
        older = [key for key in ("responder", *BRAINS) if key in self.model_fields_set]
        if not older:
            return self
        if "brain" in self.model_fields_set:
            raise ValueError(f"chat.brain and the older chat.{older[0]} are both set: keep chat.brain (engine: ...) "
                             "and move the rest into it")
        name = "host" if self.responder in (None, "offline") else self.responder
        section = getattr(self, name)
        if section is None:
            raise ValueError(f"the chat.{name} section is required when chat.responder is {name} "
                             f"(or write chat.brain with engine: {name})")
        if "host" in self.model_fields_set and "mention_max" not in section.model_fields_set:
            section = section.model_copy(update={"mention_max": self.host.mention_max})
        self.brain = section
        return self

    def secret_env_names(self) -> list[str]:
        """Environment variables that hold keys (the brain's, and the usual LLM key's whichever
        brain runs): their values never reach a prompt, a post or a log."""
        return list(dict.fromkeys([*self.brain.secret_env_names(), LlmBrainConfig().api_key_env]))
