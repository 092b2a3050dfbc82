"""Settings of the retake.tv side: the agent's public profile and how to talk to the API."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ..core.base58 import solana_key_problem
from ..core.settings import SettingsModel
from .origin import validate_base_url


def validate_solana_address(value: str) -> str:
    """A Solana public key is base58 text that decodes to exactly 32 bytes."""
    problem = solana_key_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class AgentConfig(SettingsModel):
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


class RetakeConfig(SettingsModel):
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
    def _host_allowed(self) -> RetakeConfig:
        # parsed as the transport parses it, refused if ambiguous, stored rebuilt (retake/origin.py)
        self.base_url = validate_base_url(self.base_url, sandbox=self.sandbox)
        return self
