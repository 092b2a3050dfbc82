"""The appliance's YAML config, validated at load with pydantic v2.

One model per concern, composed into :class:`Settings`. Unknown keys are errors, every
field has a default except the agent profile, and a bad file is reported as
``<file>: agent.ticker: at most 10 characters`` (see :func:`load_config`).
Secrets never live here: the access token comes from ``RETAKE_ACCESS_TOKEN`` or the
credentials file (see :mod:`appliance.credentials`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from .errors import ConfigError
from .files import StateLayout
from .retake.origin import RETAKE_HOST, is_loopback_host, validate_base_url  # noqa: F401 - re-exported

IN_CONTAINER = bool(os.environ.get("APPLIANCE_IN_CONTAINER"))  # set by the Dockerfile
DEFAULT_CONFIG = Path("/config/appliance.yaml") if IN_CONTAINER else Path("appliance.yaml")
DEFAULT_STATE_DIR = Path("/state") if IN_CONTAINER else Path(
    os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "retake-appliance"

_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]+$")
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58_decode(text: str) -> bytes:
    """Decode a base58 (Bitcoin alphabet) string; ValueError on a bad character."""
    if not text or not _BASE58.match(text):
        raise ValueError("not base58 (letters and digits without 0, O, I, l)")
    number = 0
    for char in text:
        number = number * 58 + _B58_ALPHABET.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * (len(text) - len(text.lstrip("1"))) + body


def validate_solana_address(value: str) -> str:
    """A Solana public key is base58 text that decodes to exactly 32 bytes."""
    try:
        decoded = base58_decode(value)
    except ValueError as exc:
        raise ValueError(f"wallet address is {exc}") from None
    if len(decoded) != 32:
        raise ValueError(f"a Solana public key decodes to 32 bytes, this one to {len(decoded)}")
    return value


IMAGE_OVERLAYS = Path("/opt/appliance/overlays")  # where compose mounts the repo's overlays/


def builtin_overlays() -> Path:
    """The built-in scene templates and the default feed folder (never inside the state
    folder): ``$APPLIANCE_HOME/overlays`` when set; else ``/opt/appliance/overlays`` when it is
    there (compose mounts the repo's ``overlays/`` there, so edits are live in the container);
    else the package's own copy (``appliance/tree/overlays``, put into the wheel by setup.py);
    else the checkout's ``overlays/`` (development, editable installs)."""
    home = os.environ.get("APPLIANCE_HOME")
    if home:
        return Path(home) / "overlays"
    package = Path(__file__).resolve().parent
    for folder in (IMAGE_OVERLAYS, package / "tree" / "overlays"):
        if folder.is_dir():
            return folder
    return package.parent / "overlays"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AgentConfig(_Model):
    """The public profile registered on retake.tv (reference section 1)."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: Annotated[str, Field(min_length=1, max_length=500)]
    image_url: str
    wallet_address: str
    ticker: Annotated[str, Field(min_length=1, max_length=10)]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", v):
            raise ValueError("letters, digits, '_', '.' and '-' only (it becomes the stream URL)")
        return v

    @field_validator("image_url")
    @classmethod
    def _image_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be a public https:// URL of a square jpg/png")
        return v

    @field_validator("wallet_address", "ticker", "name", mode="before")
    @classmethod
    def _digits_are_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # YAML reads 1111... as a number

    @field_validator("wallet_address")
    @classmethod
    def _wallet(cls, v: str) -> str:
        return validate_solana_address(v)

    @field_validator("ticker")
    @classmethod
    def _ticker(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]+", v):
            raise ValueError("letters and digits only")
        return v


class RetakeConfig(_Model):
    """Where the API is and how patiently to talk to it."""

    base_url: str = "https://retake.tv/api/v1"
    # A loopback base_url (the sandbox) is accepted only when this says so explicitly.
    sandbox: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    backoff_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0, le=300)] = 8.0
    skill_check: bool = True

    @model_validator(mode="after")
    def _host_allowed(self) -> "RetakeConfig":
        # parsed as the transport parses it, refused if ambiguous, stored rebuilt (retake/origin.py)
        self.base_url = validate_base_url(self.base_url, sandbox=self.sandbox)
        return self


class PathsConfig(_Model):
    """Where secrets and state live (a volume in the container)."""

    credentials: Path | None = None  # default: ~/.config/retake/credentials.json or /state/...
    state_dir: Path = DEFAULT_STATE_DIR

    def credentials_path(self) -> Path:
        if self.credentials is not None:
            return self.credentials.expanduser()
        if IN_CONTAINER:
            return StateLayout(self.state_dir).credentials
        return Path.home() / ".config/retake/credentials.json"


class StreamConfig(_Model):
    """Display and encoder settings; defaults are the reference's FFmpeg command."""

    display: Annotated[str, Field(pattern=r"^(auto|:[0-9]+(\.[0-9]+)?)$")] = "auto"  # auto: a free one at start
    width: Annotated[int, Field(ge=320, le=3840)] = 1280
    height: Annotated[int, Field(ge=240, le=2160)] = 720
    framerate: Annotated[int, Field(ge=10, le=60)] = 30
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    video_bitrate_k: Annotated[int, Field(ge=200, le=20000)] = 1500
    bufsize_k: Annotated[int, Field(ge=200, le=40000)] = 3000
    keyframe_s: Annotated[float, Field(gt=0, le=4)] = 2.0
    audio_bitrate_k: Annotated[int, Field(ge=32, le=320)] = 128
    sample_rate: Literal[44100, 48000] = 44100
    strict_cbr: bool = False  # x264 nal-hrd=cbr; the reference command is not strict CBR
    # libx264 threads. 1 (the default): 3-5 % less CPU at equal SSIM, and 4 appliances keep every
    # frame on 2 cores where FFmpeg's choice kept 3 (bench/density.py); 0 lets FFmpeg choose (one
    # per core, the skill's reference) for a big screen on a host of its own
    encoder_threads: Annotated[int, Field(ge=0, le=16)] = 1
    audio_source: Literal["pulse", "silent"] = "pulse"
    sink: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "stream"
    thumbnail_interval_s: float = 180.0
    live_timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    status_poll_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    stall_after_s: Annotated[float, Field(ge=2, le=60)] = 6.0
    min_speed: Annotated[float, Field(gt=0, le=1)] = 0.95

    @field_validator("thumbnail_interval_s")
    @classmethod
    def _clamp_thumbnail(cls, v: float) -> float:
        # the platform asks for a refresh every 2-5 minutes
        return min(max(v, 120.0), 300.0)


class MusicConfig(_Model):
    """A background music loop into the sink, ducked while the agent speaks."""

    file: Path                                                   # any format FFmpeg reads
    volume: Annotated[int, Field(ge=0, le=100)] = 30             # % of full level
    duck_to: Annotated[int, Field(ge=0, le=100)] = 8             # % while the agent speaks


class _VoiceBase(_Model):
    """What every voice engine shares: how text is cut, queued and played. The espeak-ng
    settings are every engine's too: espeak-ng is the fallback when another engine fails."""

    max_chars: Annotated[int, Field(ge=20, le=2000)] = 400       # one utterance; longer is cut
    espeak_voice: Annotated[str, Field(pattern=r"^[A-Za-z0-9_+-]+$")] = "en-us"
    words_per_minute: Annotated[int, Field(ge=80, le=400)] = 165
    pitch: Annotated[int, Field(ge=0, le=99)] = 50
    queue_max: Annotated[int, Field(ge=1, le=100)] = 8           # utterances waiting (see voice/queue.py)
    max_wait_s: Annotated[float, Field(ge=1, le=600)] = 60.0     # a reply waiting longer is stale: dropped
    volume: Annotated[int, Field(ge=0, le=150)] = 100            # the voice's level, % (the sink's own stays)
    music: MusicConfig | None = None


class EspeakVoiceConfig(_VoiceBase):
    """espeak-ng: offline, always there (the default)."""

    engine: Literal["espeak"] = "espeak"


class GttsVoiceConfig(_VoiceBase):
    """Google's voice through gTTS (needs the internet); cached per text, throttled, and
    espeak-ng when it fails."""

    engine: Literal["gtts"]
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")] = "en"
    fallback_to_espeak: bool = True
    min_interval_s: Annotated[float, Field(ge=0, le=60)] = 1.0   # between two requests to Google
    cache_entries: Annotated[int, Field(ge=0, le=10000)] = 200   # mp3s kept in <state>/cache/voice


class CommandVoiceConfig(_VoiceBase):
    """Any program that reads the text on stdin and writes WAV (or raw PCM) on stdout: Piper,
    a cloud TTS script, ... Run without a shell, with a timeout; espeak-ng when it fails."""

    engine: Literal["command"]
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    output: Literal["wav", "raw"] = "wav"
    raw_sample_rate: Annotated[int, Field(ge=8000, le=96000)] = 22050   # raw: s16le at this rate
    raw_channels: Literal[1, 2] = 1
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    fallback_to_espeak: bool = True


VoiceConfig = Annotated[EspeakVoiceConfig | GttsVoiceConfig | CommandVoiceConfig,
                        Field(discriminator="engine")]
AnyVoiceConfig = EspeakVoiceConfig | GttsVoiceConfig | CommandVoiceConfig


class OverlayConfig(_Model):
    """The content window and on-screen text."""

    content_log: Path | None = None  # default: <state_dir>/stream.log
    watch_dir: Path | None = None  # *.txt written here appear on screen; default the repo's overlays/
    font_size: Annotated[int, Field(ge=6, le=48)] = 12
    foreground: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#00ff00"
    background: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#000000"
    max_line_chars: Annotated[int, Field(ge=20, le=400)] = 150


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
Route = Literal["chat", "voice", "caption"]


class HostBrainConfig(_Model):
    """The offline brain (and every other brain's fallback)."""

    mention_max: Annotated[int, Field(ge=1, le=20)] = 5  # names in one coalesced reply ("and 3 more")


class LlmBrainConfig(_Model):
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp server)."""

    base_url: str = "https://api.openai.com/v1"  # .../chat/completions is appended
    model: Annotated[str, Field(min_length=1, max_length=200)] = "gpt-4o-mini"
    # the NAME of the environment variable holding the key (the key itself never goes in YAML);
    # unset or empty: no Authorization header (a local Ollama / llama.cpp server)
    api_key_env: Annotated[str, Field(pattern=_ENV_NAME)] = "OPENAI_API_KEY"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 8.0  # then the host brain answers that message
    system_prompt: Annotated[str, Field(max_length=4000)] | None = None  # default: built from agent:
    max_tokens: Annotated[int, Field(ge=16, le=2000)] = 150
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.8
    history: Annotated[int, Field(ge=0, le=50)] = 12  # recent chat lines given as context

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


class CommandBrainConfig(_Model):
    """A program: the event as JSON on stdin, the reply as JSON (``{"text": ...}``) on stdout."""

    argv: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=64)]
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 8.0


class WebhookBrainConfig(_Model):
    """POSTs the event as JSON to a URL; the reply (``{"text": ...}``) is the response body."""

    url: str
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 8.0
    # extra request headers whose values come from environment variables: {Authorization: MY_ENV}
    headers_env: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")],
                      Annotated[str, Field(pattern=_ENV_NAME)]] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


class ExternalBrainConfig(_Model):
    """Replies come from outside (``POST /reply`` after reading ``GET /events``)."""

    cover_after_s: Annotated[float, Field(ge=1, le=120)] = 8.0  # then the host brain answers


class ProactiveConfig(_Model):
    """What the agent says when chat is quiet: a bank of lines, none repeated within a window."""

    lines: list[Annotated[str, Field(min_length=3, max_length=300)]] = Field(default_factory=lambda: [
        "Quiet chat, so I pick: {idea}. Object now or it happens.",
        "Still here, still running ({uptime} in). Next up: {idea}. Say !help for commands.",
        "Dead air is not allowed on this channel. Vote: {idea} — yes or no?",
        "Confession: I have been live {uptime} and I still think {idea} is the best plan. Change my mind.",
        "If you are lurking: type one word and I will build the next ten minutes around it.",
        "Chat is quiet enough to hear the fans. Option on the table: {idea}.",
        "New rule: the next message in chat decides what I do. No pressure.",
        "{viewers} of you watching and nobody typing. Suspicious. Say hi, I remember names.",
        "Running theory: silence means agreement. So we are doing {idea}.",
        "Question for the lurkers: what would make you bring a friend here right now?",
        "Quick status: {uptime} live, zero crashes I admit to. Ask me anything with a question mark.",
        "I could do this alone, but it is better with chat steering. Type !ideas for the menu.",
    ], min_length=1, max_length=200)
    no_repeat_s: Annotated[float, Field(ge=0, le=7 * 86400)] = 3600.0  # never the same line within this
    routes: list[Route] = Field(default_factory=lambda: ["chat"], min_length=1)

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


class ModerationConfig(_Model):
    """What reaches the brain, the screen and the voice; what may leave."""

    per_viewer_per_minute: Annotated[int, Field(ge=1, le=600)] = 6  # more: read, not answered
    blocklist: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list)  # names, user ids or wallets whose messages are ignored
    blocked_words: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list)  # a message containing one is ignored
    links: Literal["strip", "block", "allow"] = "strip"  # links in viewer text (strip: "[link]")
    max_message_chars: Annotated[int, Field(ge=20, le=2000)] = 300
    max_name_chars: Annotated[int, Field(ge=3, le=64)] = 24


class MemoryConfig(_Model):
    """Viewer memory (SQLite on the state volume): bounded, oldest rows pruned."""

    max_viewers: Annotated[int, Field(ge=10, le=1_000_000)] = 5000
    max_notes_per_viewer: Annotated[int, Field(ge=0, le=200)] = 20
    journal_rows: Annotated[int, Field(ge=100, le=1_000_000)] = 5000  # comments remembered as read
    # chat silent longer than this = a new stream: viewers are greeted again ("welcome back")
    session_gap_s: Annotated[float, Field(ge=60, le=7 * 86400)] = 1800.0


BRAINS = ("host", "llm", "command", "webhook", "external")


class SceneConfig(_Model):
    """The on-screen layout drawn by the scene renderer (appliance/scene/)."""

    dir: Path | None = None  # scene templates (*.yaml) and their images; default the repo's overlays/
    default: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = "live"
    topic: Annotated[str, Field(max_length=200)] = ""   # under the title; `appliance scene` and chat may change it


class SimulcastOutput(_Model):
    """One extra ingest (Twitch, YouTube, ...) fed from the same encode (appliance/media/simulcast.py)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    url: str                    # rtmp(s)://host[:port]/app, without the key
    key_file: Path              # the stream key, alone in a file (mode 600): never in this config

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname or not parts.path.strip("/"):
            raise ValueError("must be rtmp://host/app or rtmps://host/app (the key goes in key_file)")
        if re.search(r"[\s|\[\]'\"\\]", v):
            raise ValueError("must not contain spaces, quotes, backslashes, '|', '[' or ']'")
        return v.rstrip("/")


class SimulcastConfig(_Model):
    """Extra outputs from the same encode: no second encode; a failing one never touches the
    retake.tv stream and is retried on its own."""

    outputs: Annotated[list[SimulcastOutput], Field(max_length=4)] = Field(default_factory=list)
    retry_s: Annotated[float, Field(gt=0, le=60)] = 2.0        # first wait before a retry
    retry_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0  # the backoff's ceiling


class ChatConfig(_Model):
    """How the agent reads and answers its chat."""

    poll_s: Annotated[float, Field(ge=1, le=10)] = 2.5
    quiet_poll_s: Annotated[float, Field(ge=1, le=30)] = 6.0
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    opening_message: Annotated[str, Field(min_length=1, max_length=500)] = (
        "I'm live. What should we explore today?")
    quiet_after_s: Annotated[float, Field(ge=10, le=600)] = 60.0
    # which brain answers: host (offline default; "offline" is its old name), llm, command,
    # webhook, external; each has its own section below (chat.llm, chat.command, ...)
    responder: Literal["host", "offline", "llm", "command", "webhook", "external"] = "host"
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
    reply_routes: list[Route] = Field(default_factory=lambda: ["chat"], min_length=1)
    proactive: ProactiveConfig = Field(default_factory=ProactiveConfig)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    host: HostBrainConfig = Field(default_factory=HostBrainConfig)
    llm: LlmBrainConfig = Field(default_factory=LlmBrainConfig)
    command: CommandBrainConfig | None = None
    webhook: WebhookBrainConfig | None = None
    external: ExternalBrainConfig = Field(default_factory=ExternalBrainConfig)

    @model_validator(mode="after")
    def _brain_section(self) -> "ChatConfig":
        if self.responder == "offline":
            self.responder = "host"
        if self.responder in ("command", "webhook") and getattr(self, self.responder) is None:
            raise ValueError(f"the chat.{self.responder} section is required when chat.responder is {self.responder}")
        return self

    @property
    def brain(self) -> str:
        """The selected brain's name (one of :data:`BRAINS`)."""
        return "host" if self.responder == "offline" else self.responder


class WebhookTarget(_Model):
    """One operator webhook: generic JSON, or shaped for Discord or Slack."""

    url: str
    preset: Literal["generic", "discord", "slack"] = "generic"
    events: list[Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]] = Field(
        default_factory=list)  # only these events (empty: all)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


class NotifyConfig(_Model):
    """How the operator is told about live, blocked and failed states."""

    webhook_url: str | None = None
    file: Path | None = None  # default: <state_dir>/notifications.log
    webhooks: list[WebhookTarget] = Field(default_factory=list, max_length=20)
    retries: Annotated[int, Field(ge=0, le=10)] = 4  # per webhook delivery, off the stream's path
    backoff_s: Annotated[float, Field(gt=0, le=300)] = 2.0  # first retry delay; doubles, with jitter
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    large_tip_sol: Annotated[float, Field(ge=0)] = 0.5  # a tip this large is worth telling (0: every tip)
    low_viewers: Annotated[int, Field(ge=0)] = 1  # mid-stream, fewer viewers than this: ask for a share (0: off)
    low_viewers_after_s: Annotated[float, Field(ge=0)] = 600.0  # not before this long live
    low_viewers_every_s: Annotated[float, Field(ge=60)] = 1800.0  # at most this often

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("https", "http"):
            raise ValueError("must be an http(s) URL")
        return v


class ControlConfig(_Model):
    """The local control API (127.0.0.1 only)."""

    port: Annotated[int, Field(ge=0, le=65535)] = 0  # 0: a free one, chosen at start
    autostart: bool = True     # go live at start; false: stand by (alive, not ready) until go_live
    preview_fps: Annotated[float, Field(ge=0.2, le=2)] = 1.0       # the console's preview of the display
    preview_width: Annotated[int, Field(ge=160, le=1280)] = 640    # its width in pixels (height follows)
    session_hours: Annotated[float, Field(gt=0, le=168)] = 12.0    # a console login lasts this long


class TerminalConfig(_Model):
    """The on-screen terminal: a tmux session in the content window (the log in one pane, a
    shell in the other) that the operator drives through the console or the MCP tool
    ``terminal`` (control token or console session). Viewers' chat never reaches it: no chat
    brain is given it (none of today's brains can call tools; README: The on-screen terminal)."""

    shell: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_./-]+$")] = "/bin/bash"
    log_percent: Annotated[int, Field(ge=10, le=90)] = 45          # the log pane's share of the height


class RecoveryConfig(_Model):
    """How hard to try after a crash, without 'spam streaming'."""

    backoff_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    backoff_max_s: Annotated[float, Field(ge=1, le=900)] = 120.0
    max_restarts_per_hour: Annotated[int, Field(ge=1, le=60)] = 6
    verification_recheck_s: Annotated[float, Field(ge=5, le=3600)] = 60.0


class DeployConfig(_Model):
    """How `appliance fleet` runs this agent: a container (docker/podman) or a Kubernetes pod.
    Defaults from the density figures (README, "Density"): one appliance at 1280x720@30 uses
    about half a core and 370 MB for the whole process tree."""

    image: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")] = (
        "retake-appliance:latest")
    cpus: Annotated[float, Field(gt=0, le=64)] = 1.0              # limit (docker --cpus, Kubernetes limits.cpu)
    cpu_request: Annotated[float, Field(gt=0, le=64)] = 0.5       # Kubernetes requests.cpu
    memory_mb: Annotated[int, Field(ge=256, le=65536)] = 1024      # limit (docker --memory, limits.memory)
    memory_request_mb: Annotated[int, Field(ge=128, le=65536)] = 512  # Kubernetes requests.memory
    shm_mb: Annotated[int, Field(ge=16, le=4096)] = 64             # /dev/shm (measured: empty while streaming)


class Settings(_Model):
    """The whole config file."""

    agent: AgentConfig
    retake: RetakeConfig = Field(default_factory=RetakeConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    auto_register: bool = False  # register on `live` when no credentials exist
    stream: StreamConfig = Field(default_factory=StreamConfig)
    voice: VoiceConfig = Field(default_factory=EspeakVoiceConfig)
    overlay: OverlayConfig = Field(default_factory=OverlayConfig)
    scene: SceneConfig = Field(default_factory=SceneConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    terminal: TerminalConfig = Field(default_factory=TerminalConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    simulcast: SimulcastConfig = Field(default_factory=SimulcastConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # `notify:` with everything commented out reads as null: it means "all defaults"
        if isinstance(data, dict):
            data = {k: ({} if v is None and k != "agent" else v) for k, v in data.items()}
            if isinstance(data.get("voice"), dict) and "engine" not in data["voice"]:
                data["voice"] = {"engine": "espeak", **data["voice"]}  # the default engine
        return data

    @property
    def state_dir(self) -> Path:
        return self.paths.state_dir.expanduser()

    @property
    def layout(self) -> StateLayout:
        """Every path of the state folder."""
        return StateLayout(self.state_dir)

    def content_log(self) -> Path:
        return self.overlay.content_log or self.layout.content_log

    def credentials_path(self) -> Path:
        """paths.credentials if set; for a sandbox its own file beside the state, so sandbox
        credentials never overwrite (or get mistaken for) the real ones."""
        if self.paths.credentials is None and self.retake.sandbox:
            return self.layout.sandbox_credentials
        return self.paths.credentials_path()

    def overlay_dir(self) -> Path:
        """The feed folder: ``overlay.watch_dir``, default the repo's (the image's) overlays/."""
        return (self.overlay.watch_dir or builtin_overlays()).expanduser()

    def scene_dir(self) -> Path:
        """Where the scene templates are: ``scene.dir``, default the repo's overlays/."""
        return (self.scene.dir or builtin_overlays()).expanduser()

    def notify_file(self) -> Path:
        return self.notify.file or self.layout.notifications

    def stream_url(self) -> str:
        return f"https://retake.tv/{self.agent.name}"


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        reason = "unknown key (see config.example.yaml for the keys there are)"
    elif kind == "missing":
        reason = "required"
    elif kind == "string_too_long":
        reason = f"at most {ctx.get('max_length')} characters"
    elif kind == "string_too_short":
        reason = f"at least {ctx.get('min_length')} character(s)"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        reason = error["msg"].lower()
    else:
        reason = error["msg"].removeprefix("Value error, ")
    return f"{where}: {reason}"


def parse_config(data: Any, source: str = "config") -> Settings:
    """Validate already-parsed YAML; ConfigError names every bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with an 'agent:' section",
                          fix="start from config.example.yaml")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}", fix="edit the file; config.example.yaml documents every key") from None


def load_config(path: str | os.PathLike[str]) -> Settings:
    """Read and validate the YAML config at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file",
                          fix="copy config.example.yaml there, or pass --config FILE") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_config(data, str(path))
