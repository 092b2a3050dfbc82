"""The skill version check the platform asks for before every go-live.

``skill.json`` and ``skill.md`` are fetched only from the API's own origin (``https://retake.tv``,
or the sandbox in a rehearsal), without following any redirect, and never with the token.
A changed version re-fetches ``skill.md`` into the cache and tells the operator; being
offline is a warning, never a blocker. Fetched text is stored for the operator to read; it is
never executed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import requests

from ..core.files import write_private
from ..core.sanitize import clean_text
from .client import TRANSPORT_ERRORS
from .origin import parse_origin
from .settings import RetakeConfig

log = logging.getLogger("appliance.skill")
KNOWN_VERSION = "2.1.2"  # the version this appliance implements
MAX_SKILL_BYTES = 1_000_000
# a skill.json that cannot be fetched or read: the check reports "offline"
_META_ERRORS: tuple[type[BaseException], ...] = (*TRANSPORT_ERRORS, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class SkillCheck:
    outcome: Literal["unchanged", "changed", "first", "offline"]
    version: str | None
    previous: str | None
    detail: str = ""

    def line(self) -> str:
        if self.outcome == "offline":
            return (f"skill check: could not reach the skill file ({self.detail}); "
                    f"going on with {self.previous or KNOWN_VERSION}")
        if self.outcome == "changed":
            return (f"skill check: retake.tv skill changed {self.previous} -> {self.version}; "
                    f"new text cached ({self.detail}) — read it before the next release")
        return f"skill check: version {self.version} ({self.outcome})"


def skill_origin(cfg: RetakeConfig) -> str:
    """The API's origin, rebuilt from the validated scheme, host and port."""
    return parse_origin(cfg.base_url, "base_url").url


def _fetch(session: requests.Session, url: str, timeout: float) -> bytes:
    response = session.get(url, timeout=timeout, allow_redirects=False, stream=True)
    with response:
        if response.is_redirect:
            raise OSError("refused a redirect (the skill file is fetched from the API's own origin only)")
        if response.status_code != 200:
            raise OSError(f"HTTP {response.status_code}")
        body = response.raw.read(MAX_SKILL_BYTES + 1, decode_content=True)
    if len(body) > MAX_SKILL_BYTES:
        raise OSError("skill file larger than 1 MB")
    return body


def check_skill(cfg: RetakeConfig, cache_dir: Path, *, session: requests.Session | None = None) -> SkillCheck:
    session = session or requests.Session()
    origin = skill_origin(cfg)
    cached_file = cache_dir / "skill.json"
    previous = None
    try:
        previous = clean_text(json.loads(cached_file.read_text())["version"], 32) or None
    except (OSError, ValueError, KeyError, TypeError):
        previous = None
    try:
        meta = json.loads(_fetch(session, f"{origin}/skill.json", cfg.timeout_s))
        version = clean_text(meta["version"], 32)  # logged, shown, notified: never raw platform text
        if not version:
            raise ValueError("empty version")
    except _META_ERRORS as exc:
        return SkillCheck("offline", None, previous,
                          type(exc).__name__ + (f": {exc}" if isinstance(exc, OSError) else ""))
    if previous == version and (cache_dir / "skill.md").exists():
        return SkillCheck("unchanged", version, previous)
    try:
        text = _fetch(session, f"{origin}/skill.md", cfg.timeout_s)
    except TRANSPORT_ERRORS as exc:
        return SkillCheck("offline", version, previous, f"skill.md: {exc}")
    write_private(cache_dir / "skill.md", text)
    write_private(cached_file, json.dumps({"version": version}))
    outcome: Literal["changed", "first"] = "first" if previous is None else "changed"
    if previous is None and version != KNOWN_VERSION:
        outcome = "changed"
        previous = KNOWN_VERSION
    return SkillCheck(outcome, version, previous, str(cache_dir / "skill.md"))
