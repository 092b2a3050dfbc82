"""A fleet folder: one ``<name>.yaml`` per agent, its secrets beside it.

    fleet/
      alice.yaml        an appliance config (agent.name: alice)
      alice.env         its secrets, NAME=value lines: RETAKE_ACCESS_TOKEN=..., OPENAI_API_KEY=...,
                        the names of chat.brain.headers_env (optional; mode 600; git-ignored)
      alice.token       the access token alone (optional; older folders)

The secrets reach the agent's container as files, one per name, mounted read-only at
``/run/secrets`` (:mod:`appliance.core.secrets`), never as environment variables.

Every YAML is validated as `appliance up` would; a bad one names its file and key, and
nothing is started (`fleet status` still shows every other agent, and names the bad file).
Two files naming the same agent are an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..core.errors import ConfigError
from ..core.secrets import NAME
from ..retake.credentials import ENV_TOKEN
from ..retake.origin import is_loopback_host

if TYPE_CHECKING:  # the composed settings; `appliance fleet` hands in the loader (cli.py)
    from ..config import Settings

Loader = Callable[[Path], "Settings"]

_DOCKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Agent:
    """One agent of the fleet: its config file, settings and where its token comes from."""

    config: Path
    settings: Settings
    env_file: Path | None
    token_file: Path | None

    @property
    def name(self) -> str:
        return self.settings.agent.name

    @property
    def uses_local_sandbox(self) -> bool:
        """True when the config targets a sandbox on this host's loopback."""
        return self.settings.retake.sandbox and is_loopback_host(urlsplit(self.settings.retake.base_url).hostname)

    def secrets(self) -> dict[str, str]:
        """Every secret of the agent: ``<name>.env``'s NAME=value lines (# comments; quotes
        removed) and ``<name>.token`` (the access token, unless the .env gives one)."""
        found: dict[str, str] = {}
        if self.env_file is not None:
            for number, line in enumerate(self.env_file.read_text(encoding="utf-8").splitlines(), 1):
                key, sep, value = line.strip().partition("=")
                key = key.strip().removeprefix("export ").strip()
                if not sep or key.startswith("#"):
                    continue
                if not NAME.match(key):
                    raise ConfigError(f"{self.env_file}:{number}: {key[:40]!r} is not a secret's name",
                                      fix="NAME=value lines, NAME made of letters, digits and _")
                value = value.strip().strip('"').strip("'")
                if value:
                    found[key] = value
        if ENV_TOKEN not in found and self.token_file is not None:
            token = self.token_file.read_text(encoding="utf-8").strip()
            if token:
                found[ENV_TOKEN] = token
        return found

    def fingerprint(self, *extra: str) -> str:
        """Changes when the config, the token files or ``extra`` (image, options) change."""
        digest = hashlib.sha256()
        for path in (self.config, self.env_file, self.token_file):
            digest.update(path.read_bytes() if path is not None else b"-")
            digest.update(b"\0")
        for item in extra:
            digest.update(item.encode() + b"\0")
        return digest.hexdigest()[:16]


def load_fleet(folder: Path, load: Loader, *, errors: list[ConfigError] | None = None) -> list[Agent]:
    """Every ``*.yaml`` of ``folder`` as an :class:`Agent` (each read by ``load``: the config
    loader), sorted by name. The first bad file raises its ConfigError; with ``errors`` given,
    each bad file's error is added there instead and the good agents are returned."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder", fix="pass the folder holding one <agent>.yaml per agent")
    agents: dict[str, Agent] = {}
    configs = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    for config in configs:
        try:
            agent = _load_agent(config, load, agents)
        except ConfigError as exc:
            if errors is None:
                raise
            errors.append(exc)
            continue
        agents[agent.name] = agent
    if not configs:
        raise ConfigError(f"{folder}: no *.yaml agent configs",
                          fix="add one appliance.yaml per agent (see `appliance init`)")
    return sorted(agents.values(), key=lambda a: a.name)


def _load_agent(config: Path, load: Loader, agents: dict[str, Agent]) -> Agent:
    settings = load(config)
    name = settings.agent.name
    if not _DOCKER_NAME.match(name):
        raise ConfigError(f"{config}: agent.name: {name!r} cannot name a container",
                          fix="start it with a letter or digit")
    if name in agents:
        raise ConfigError(f"{config}: agent.name: {name} is also the agent of {agents[name].config}",
                          fix="one file per agent")
    env_file, token_file = config.with_suffix(".env"), config.with_suffix(".token")
    return Agent(config.resolve(), settings, env_file.resolve() if env_file.is_file() else None,
                 token_file.resolve() if token_file.is_file() else None)
