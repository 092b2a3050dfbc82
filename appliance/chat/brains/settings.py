"""Settings of each chat brain: one model per brain, chosen by ``engine`` (a discriminated
union, as the voices are), in ``chat.brain``::

    chat:
      brain:
        engine: llm                 # host (default), llm, command, webhook, external
        base_url: http://127.0.0.1:11434/v1
        model: llama3.1

The older spelling is still read (``chat.responder: llm`` with a ``chat.llm:`` section): see
:class:`~appliance.chat.settings.ChatConfig`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from ...core.settings import ENV_NAME, SettingsModel, http_url


class _BrainBase(SettingsModel):
    """What every brain shares. The host brain is every brain's fallback (for a turn the brain
    cannot answer in time), so its settings are every brain's too."""

    mention_max: Annotated[int, Field(ge=1, le=20)] = 5  # names in one coalesced reply ("and 3 more")

    def secret_env_names(self) -> tuple[str, ...]:
        """Environment variables holding this brain's keys (never in a prompt, a post or a log)."""
        return ()


class HostBrainConfig(_BrainBase):
    """The offline brain (and every other brain's fallback): greetings, thanks, commands, lines
    for quiet moments."""

    engine: Literal["host"] = "host"


class LlmBrainConfig(_BrainBase):
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp server)."""

    engine: Literal["llm"] = "llm"
    base_url: str = "https://api.openai.com/v1"  # .../chat/completions is appended
    model: Annotated[str, Field(min_length=1, max_length=200)] = "gpt-4o-mini"
    # the NAME of the environment variable holding the key (the key itself never goes in YAML);
    # unset or empty: no Authorization header (a local Ollama / llama.cpp server)
    api_key_env: Annotated[str, Field(pattern=ENV_NAME)] = "OPENAI_API_KEY"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 8.0  # then the host brain answers that message
    system_prompt: Annotated[str, Field(max_length=4000)] | None = None  # default: built from agent:
    max_tokens: Annotated[int, Field(ge=16, le=2000)] = 150
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.8
    history: Annotated[int, Field(ge=0, le=50)] = 12  # recent chat lines given as context

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v)

    def secret_env_names(self) -> tuple[str, ...]:
        return (self.api_key_env,)


class CommandBrainConfig(_BrainBase):
    """A program: the event as JSON on stdin, the reply as JSON (``{"text": ...}``) on stdout."""

    engine: Literal["command"] = "command"
    argv: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=64)]
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 8.0


class WebhookBrainConfig(_BrainBase):
    """POSTs the event as JSON to a URL; the reply (``{"text": ...}``) is the response body."""

    engine: Literal["webhook"] = "webhook"
    url: str
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 8.0
    # extra request headers whose values come from environment variables: {Authorization: MY_ENV}
    headers_env: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")],
                      Annotated[str, Field(pattern=ENV_NAME)]] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v)

    def secret_env_names(self) -> tuple[str, ...]:
        return tuple(self.headers_env.values())


class ExternalBrainConfig(_BrainBase):
    """Replies come from outside (``POST /reply`` after reading ``GET /events``)."""

    engine: Literal["external"] = "external"
    cover_after_s: Annotated[float, Field(ge=1, le=120)] = 8.0  # then the host brain answers


AnyBrainConfig = HostBrainConfig | LlmBrainConfig | CommandBrainConfig | WebhookBrainConfig | ExternalBrainConfig
BrainConfig = Annotated[AnyBrainConfig, Field(discriminator="engine")]
BRAINS = ("host", "llm", "command", "webhook", "external")
