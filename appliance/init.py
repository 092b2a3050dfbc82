"""`appliance init`: write a starter ``appliance.yaml``.

Asks for the five things only the operator knows — the agent's name, description, image URL,
wallet and ticker — and checks each answer with the same rules `appliance register` applies
(:class:`appliance.config.AgentConfig`), asking again after a bad one. Answers may also come
as options (``--name`` ...), for scripts. The file is ``config.example.yaml`` (every key with
its default and a comment, shipped in the package) with the ``agent:`` section filled in.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import parse_config
from .core.errors import ConfigError, InputError
from .core.settings import error_problem
from .retake.settings import AgentConfig

# (config key, option name, question); the order of the prompts
QUESTIONS = (
    ("name", "name", "Agent name (letters, digits, _ . -; your stream is https://retake.tv/<name>)"),
    ("description", "description", "One-line description"),
    ("image_url", "image_url", "Avatar image URL (https, square jpg/png)"),
    ("wallet_address", "wallet", "Solana wallet address (base58 public key)"),
    ("ticker", "ticker", "Token ticker (at most 10 letters/digits)"),
)
# valid placeholders for the fields not being checked, so one answer is checked on its own
_VALID = {"name": "Agent", "description": "d", "image_url": "https://example.com/a.png",
          "wallet_address": "11111111111111111111111111111111", "ticker": "TICK"}
MAX_TRIES = 5


def check_answer(key: str, value: str) -> str | None:
    """The reason ``value`` is not a valid ``agent.<key>`` (None when it is)."""
    try:
        AgentConfig.model_validate({**_VALID, key: value})
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"] and error["loc"][0] == key:
                return error_problem(error).split(": ", 1)[1]  # the words `load_config` uses
    return None


def _yaml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(template: str, agent: Mapping[str, str]) -> str:
    """The template with each ``agent:`` key's value replaced (comments kept)."""
    lines, in_agent = [], False
    for line in template.splitlines(keepends=True):
        if re.match(r"^agent:", line):
            in_agent = True
        elif re.match(r"^\S", line):
            in_agent = False
        match = re.match(r"^(\s+)(\w+):(\s*)(\S.*?)?(\s+#.*)?$", line.rstrip("\n")) if in_agent else None
        if match and match.group(2) in agent:
            indent, key, _, _, comment = match.groups()
            line = f"{indent}{key}: {_yaml_string(agent[key])}{comment or ''}\n"
        lines.append(line)
    return "".join(lines)


def example_template() -> str:
    from .up.tree import appliance_home
    return (appliance_home() / "config.example.yaml").read_text(encoding="utf-8")


def ask(answers: Mapping[str, Any], *, read: Callable[[str], str] = input,
        write: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict[str, str]:
    """Each agent field from ``answers`` (options) or asked, checked as register would."""
    agent: dict[str, str] = {}
    for key, option, question in QUESTIONS:
        given = answers.get(option)
        for _ in range(MAX_TRIES):
            value = (given if given is not None else read(f"{question}: ")).strip()
            problem = check_answer(key, value)
            if problem is None:
                agent[key] = value
                break
            if given is not None:
                raise InputError(f"--{option.replace('_', '-')}: {problem}")
            write(f"  {problem}; try again")
        else:
            raise InputError(f"agent.{key}: no valid answer after {MAX_TRIES} tries")
    return agent


def run_init(path: Path, *, answers: Mapping[str, Any], force: bool = False,
             read: Callable[[str], str] = input) -> int:
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists", fix="pass --force to overwrite it, or --config OTHER.yaml")
    try:
        agent = ask(answers, read=read)
    except EOFError:
        raise InputError("no answer (standard input closed)",
                         fix="pass --name, --description, --image-url, --wallet and --ticker") from None
    text = render(example_template(), agent)
    import yaml
    parse_config(yaml.safe_load(text), str(path))  # the written file loads, or nothing is written
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}: agent {agent['name']}; every other key has its default (see the comments)")
    print(f"next: appliance register --config {path}   (or `appliance rehearse` to try it against the sandbox)")
    return 0
