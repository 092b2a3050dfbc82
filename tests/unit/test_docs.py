"""README.md and docs/*.md stay true: every repository path they name exists (globs match
something), every link to a file or an anchor resolves, every `appliance ...` command is a real
subcommand with real flags, and every flag given to a script or a bench exists in it.

Only code is read (inline `code` and fenced blocks) plus links: prose may say anything. A path
is checked when its first part is a top-level entry of the repository; runtime paths
(``<state_dir>/tree.json``, ``/state``) are not the repository's and are not checked."""

from __future__ import annotations

import argparse
import re
from functools import cache
from pathlib import Path

import pytest

from appliance.cli import build_parser
from appliance.config import Settings, parse_config
from tests.support.data import REPO, agent_section

DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
TOP = {p.name for p in REPO.iterdir() if not p.name.startswith(".")} | {".ci", ".env.example",
                                                                        ".pre-commit-config.yaml"}
# appliance's own folders: a path starting with one must be written from the repository's root
PACKAGES = {p.name for p in (REPO / "appliance").iterdir() if p.is_dir() and not p.name.startswith("_")}
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w/.<$-])(\.?[\w.-]+(?:/[\w.*<>{}-]+)+/?|[\w-]+\.(?:py|sh|md|yaml|toml|conf|xml|png)\b)")
COMMAND = re.compile(r"(?:^|[\s(/])appliance((?:\s+(?:--config|-v|--verbose)(?:\s+[^\s-]\S*)?)*)"
                     r"\s+([a-z][a-z-]*)([^\n`|;#&)]*)")
SCRIPT_FLAGS = re.compile(r"((?:scripts|bench|\.ci)/[\w./-]+)((?:\s+(?:--?[\w-]+|[^\s-]\S*))*)")


def code_of(text: str) -> list[str]:
    """The code in a markdown text: fenced blocks (their lines, comments left out) and inline
    spans outside them."""
    blocks = FENCE.findall(text)
    rest = FENCE.sub("", text)
    lines = [re.sub(r"(^|\s)#.*$", "", line) for block in blocks for line in block.splitlines()]
    return lines + INLINE.findall(rest)


def headings(path: Path) -> set[str]:
    """GitHub's anchors for a file's headings."""
    text = FENCE.sub("", path.read_text())
    anchors = set()
    for title in re.findall(r"^#+\s+(.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def repo_path_problem(token: str) -> str | None:
    token = token.split("::", 1)[0].rstrip("/.,:")
    if "<" in token or "{" in token or token.startswith(("http", "/")):
        return None
    if any(re.fullmatch(r"[A-Z][A-Z_]+", part.split(".")[0]) for part in token.split("/")):
        return None  # a placeholder: overlays/NAME.txt, DIR/*.yaml
    first = token.split("/", 1)[0]
    if "/" in token and first in PACKAGES and first not in TOP:
        return f"{token}: write it from the repository's root (appliance/{token})"
    if first not in TOP and not (first.endswith((".md", ".py", ".sh", ".yaml", ".toml")) and "/" not in token):
        return None
    if "/" not in token and first not in TOP:
        return None  # a bare file name (`state.json`, `appliance.yaml`): not a repository path
    if any(c in token for c in "*?["):
        return None if any(REPO.glob(token)) else f"{token}: matches nothing"
    return None if (REPO / token).exists() else f"{token}: no such file or folder"


@cache
def parser() -> argparse.ArgumentParser:
    return build_parser()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(p: argparse.ArgumentParser) -> set[str]:
    return {s for a in p._actions for s in a.option_strings}


def command_problems(line: str) -> list[str]:
    problems = []
    commands = subcommands()
    for match in COMMAND.finditer(line):
        name, rest = match.group(2), match.group(3)
        if name == "appliance":  # `docker compose exec appliance appliance status`: the service, then us
            continue
        if name not in commands:
            problems.append(f"`appliance {name}`: no such command")
            continue
        known = options(commands[name]) | options(parser())
        for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest):
            if flag not in known:
                problems.append(f"`appliance {name} {flag}`: no such option")
    return problems


def script_problems(line: str) -> list[str]:
    problems = []
    for match in SCRIPT_FLAGS.finditer(line):
        path = REPO / match.group(1)
        if not path.is_file():
            continue  # the path check reports it
        text = path.read_text()
        for flag in re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)", match.group(2)):
            if flag not in text:
                problems.append(f"{match.group(1)} {flag}: the script does not take it")
    return problems


def link_problems(doc: Path, text: str) -> list[str]:
    problems = []
    for target in LINK.findall(FENCE.sub("", text)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        where = (doc.parent / file).resolve() if file else doc
        if not where.exists():
            problems.append(f"link {target}: no such file")
        elif anchor and where.suffix == ".md" and anchor not in headings(where):
            problems.append(f"link {target}: no such heading")
    return problems


def problems_in(doc: Path) -> list[str]:
    text = doc.read_text()
    found = link_problems(doc, text)
    for code in code_of(text):
        found += [p for token in PATH.findall(code) if (p := repo_path_problem(token))]
        found += command_problems(code)
        found += script_problems(code)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_command_and_link_in_the_docs_is_real(doc: Path) -> None:
    assert problems_in(doc) == []


def config_blocks(text: str) -> list[dict]:
    """The fenced YAML blocks that are pieces of the appliance's config (top-level keys of it)."""
    import yaml
    sections = set(Settings.model_fields)
    blocks = [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)]
    return [b for b in blocks if isinstance(b, dict) and b and set(b) <= sections]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_config_snippet_in_the_docs_loads(doc: Path) -> None:
    for block in config_blocks(doc.read_text()):
        parse_config({"agent": agent_section(), **block}, f"{doc.name} snippet")


def test_the_readme_is_read_in_ten_minutes() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 300


def test_the_readme_keeps_the_two_newcomer_commands() -> None:
    code = code_of((REPO / "README.md").read_text())
    assert any(line.strip().startswith("scripts/go.sh") for line in code)
    assert any(line.strip().startswith("scripts/test.sh") for line in code)


def test_the_checker_finds_what_it_is_for(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("Run `appliance frobnicate`, `appliance say hi --loud`, `scripts/test.sh --slow`,\n"
                   "see `appliance/lifecycle.py`, `scene/show.py`, `conf.d/*.nothing` and [x](missing.md).\n"
                   "```sh\nappliance --config c.yaml up\ndocker compose exec appliance appliance status --json\n```\n")
    assert sorted(problems_in(doc)) == sorted([
        "`appliance frobnicate`: no such command", "`appliance say --loud`: no such option",
        "scripts/test.sh --slow: the script does not take it", "appliance/lifecycle.py: no such file or folder",
        "scene/show.py: write it from the repository's root (appliance/scene/show.py)",
        "conf.d/*.nothing: matches nothing", "link missing.md: no such file"])
