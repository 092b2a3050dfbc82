"""What every settings model shares: the strict pydantic base, URL and environment-name checks,
and the words a validation error is told in (where the appliance runs: :mod:`.paths`).

Each capability keeps its own settings model beside it (``retake/settings.py``,
``media/settings.py``, ``voice/settings.py``, ...); ``appliance/config.py`` composes them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails


class SettingsModel(BaseModel):
    """Base of every settings model: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"  # the name of an environment variable


def error_problem(error: ErrorDetails) -> str:
    """One validation error in a file's words: ``the.key: why`` (the config's and the scenes')."""
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        reason = "unknown key"
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


def validation_problems(exc: ValidationError) -> str:
    """Every error of a validation, each naming its key."""
    return "; ".join(error_problem(e) for e in exc.errors())


def yaml_problem(exc: Exception) -> str:
    """A ``yaml.YAMLError`` as `` line N is not valid YAML (why)`` (the line when the parser knows it)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark else ""
    return f"{where} is not valid YAML ({getattr(exc, 'problem', exc)})"
