"""Every program the code, the process tree's scripts and the tests run is installed by
``scripts/setup.sh`` — on a fresh machine, not only on one set up by hand (a test once called
ImageMagick's ``convert``, which setup.sh never installed: green here, red on a new Debian).

The programs are found in the source (argv lists handed to a process call, ``require``/``which``
names, the command words of the tree's shell scripts and supervisord programs); each is traced
to the Debian package that owns it in this machine's dpkg database (read as files: no process);
that package must be in setup.sh's lists, part of Debian's base system (priority required, what
a fresh ``debian:bookworm`` has), or the program must come from the venv. The image's Dockerfile
must install what the appliance itself runs. The fresh-container run in ``.ci/run`` proves the
lists install on a machine nobody touched.
"""

from __future__ import annotations

import ast
import re
import shutil
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DPKG = Path("/var/lib/dpkg")
BIN_DIRS = ("/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/", "/usr/games/")
# calls whose first argument is an argv list (core/proc's, subprocess's, the docker SDK's exec)
ARGV_CALLS = {"run", "popen", "Popen", "check_call", "check_output", "call", "run_tool", "run_capture",
              "exec_run", "spawn", "exec_in"}
# calls whose string arguments are program names
NAME_CALLS = {"require", "which", "need"}
# what other tools install, each with the reason
ELSEWHERE = {
    "podman": "the container engine: shared/tools/container-engine.sh installs it (CI runs it)",
    "appliance": "the venv's entry point",
    "supervisord": "the venv (a project dependency)",
}
# words at a command position of the shell scripts that are not programs
SHELL_WORDS_IGNORED = {
    # bash keywords and builtins, and the functions lib.sh defines
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "in",
    "function", "return", "exit", "local", "export", "source", "set", "unset", "printf", "echo", "read",
    "shift", "trap", "wait", "exec", "command", "test", "true", "false", "cd", "eval", "declare", "kill",
    "continue", "break", "ulimit",
    "log", "die", "require_env", "wait_for", "drop_secrets", "display_answers", "wait_for_display",
    "wm_running", "wait_for_window_manager", "sink_exists", "wait_for_sink", "session_exists",
}


def setup_lists() -> dict[str, list[str]]:
    text = (REPO / "scripts" / "setup.sh").read_text()
    lists = {}
    for name in ("HOST_PACKAGES", "TEST_PACKAGES", "TEST_OPTIONAL"):
        found = re.search(rf"^{name}=\(([^)]*)\)", text, re.M)
        assert found, f"scripts/setup.sh has no {name}=(...) list"
        lists[name] = re.sub(r"#.*", "", found.group(1)).split()
    return lists


def dockerfile_packages() -> set[str]:
    text = (REPO / "Dockerfile").read_text()
    install = re.search(r"apt-get install -y --no-install-recommends(.*?)\n \&\& ", text, re.S)
    assert install, "the Dockerfile's apt-get install line moved"
    return {w for w in re.sub(r"\\\n", " ", install.group(1)).split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w)}


# --- finding the programs --------------------------------------------------------------------

def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _argv_head(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The first item of a list/tuple literal: a string, or a module constant naming one
    (``FFMPEG = "ffmpeg"`` ... ``[FFMPEG, "-i", ...]``)."""
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        head = node.elts[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value
        if isinstance(head, ast.Name):
            return constants.get(head.id)
    return None


def python_programs(path: Path) -> set[str]:
    """Programs a Python file runs: argv lists given to a process call (also through a variable
    assigned a list literal in the same file), and the names given to require/which."""
    tree = ast.parse(path.read_text(), str(path))
    constants = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 for t in node.targets if isinstance(t, ast.Name)}
    lists: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and (head := _argv_head(node.value, constants)):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    lists.setdefault(target.id, head)
    found = set()
    for node in ast.walk(tree):
        # a list that starts with a module constant and goes on with an option (FFMPEG, "-i", ...)
        # is an argv wherever it is built
        if isinstance(node, ast.List) and len(node.elts) > 1 and isinstance(node.elts[0], ast.Name) \
                and node.elts[0].id in constants and isinstance(node.elts[1], ast.Constant) \
                and str(node.elts[1].value).startswith("-"):
            found.add(constants[node.elts[0].id])
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name in NAME_CALLS:
            found |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
        elif name in ARGV_CALLS and node.args:
            first = node.args[0]
            head = _argv_head(first, constants) or (lists.get(first.id) if isinstance(first, ast.Name) else None)
            if head:
                found.add(head)
    return {p for p in found if re.fullmatch(r"[A-Za-z][\w.+-]*", p) and not p.startswith("appliance.")}


_COMMAND_AT = re.compile(r"(?:^|[|;&(`]|\$\()\s*([A-Za-z][\w.+-]*)")


def shell_programs(text: str) -> set[str]:
    """Command words of a shell script (heredoc bodies and quoted text skipped), minus keywords,
    builtins and the functions it defines."""
    words: set[str] = set()
    heredoc = None
    functions = {name for name in re.findall(r"^\s*([A-Za-z_][\w]*)\(\)\s*\{", text, re.M)
                 if f"command {name} " not in text}  # a wrapper such as tmux() { command tmux ...; }
    for line in text.replace("\\\n", " ").splitlines():
        if heredoc:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if (start := re.search(r"<<-?'?([A-Z]+)'?", line)):
            heredoc = start.group(1)
        code = re.sub(r"(^|\s)#.*", "", line)
        code = re.sub(r"'[^']*'", "''", code)
        code = re.sub(r'"[^"]*"', lambda m: m.group(0).strip('"') if "$(" in m.group(0) else '""', code)
        code = re.sub(r"\$\(\([^()]*(\([^()]*\)[^()]*)*\)\)", "0", code)  # $(( arithmetic )): no command
        code = re.sub(r"\b(exec|command|timeout\s+\d+)\s+", "; ", code)
        code = re.sub(r"\b\w+\+?=(\$\()", r"\1", code)  # a=$(command ...): the command stays
        code = re.sub(r"\b\w+\+?=\S*", "", code)  # other assignments (a=1, a+=(b))
        words |= set(_COMMAND_AT.findall(code))
    return words - SHELL_WORDS_IGNORED - functions


def tree_shell_programs() -> dict[str, set[str]]:
    out = {}
    for script in sorted((REPO / "scripts").glob("*.sh")):
        if script.name not in ("setup.sh", "test.sh", "go.sh", "lint.sh"):  # tools of a checkout, not the tree
            out[f"scripts/{script.name}"] = shell_programs(script.read_text())
    for conf in [REPO / "supervisord.conf", *sorted((REPO / "conf.d").glob("*.conf"))]:
        for command in re.findall(r"^command=(\S+)", conf.read_text(), re.M):
            if not command.startswith("%("):
                out[str(conf.relative_to(REPO))] = {Path(command).name}
    return out


def programs_by_source() -> dict[str, set[str]]:
    """source file -> programs it runs, over appliance/, scripts/, conf.d/, tests/ and bench/."""
    out: dict[str, set[str]] = {}
    for folder in ("appliance", "tests", "bench", "scripts"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if programs := python_programs(path):
                out[str(path.relative_to(REPO))] = programs
    out.update({k: v for k, v in tree_shell_programs().items() if v})
    return out


# --- who installs them -----------------------------------------------------------------------

@cache
def dpkg_owners() -> dict[str, str]:
    """program name -> the Debian package that installs it in a bin folder (dpkg's file lists)."""
    owners: dict[str, str] = {}
    for listing in sorted((DPKG / "info").glob("*.list")):
        package = listing.stem.split(":")[0]
        for line in listing.read_text(errors="replace").splitlines():
            if line.startswith(BIN_DIRS) and line.count("/") in (2, 3):
                owners.setdefault(line.rsplit("/", 1)[1], package)
    return owners


@cache
def dpkg_status() -> dict[str, dict[str, str]]:
    status = {}
    for stanza in (DPKG / "status").read_text(errors="replace").split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.M))
        if "Package" in fields:
            status[fields["Package"]] = fields
    return status


@cache
def base_packages() -> frozenset[str]:
    """Installed packages of priority required or Essential: what debootstrap's minbase (a fresh
    debian:bookworm) already has."""
    return frozenset(name for name, fields in dpkg_status().items()
                     if fields.get("Priority") == "required" or fields.get("Essential") == "yes")


def with_dependencies(packages: set[str]) -> set[str]:
    """``packages`` and every installed package they depend on (Depends, Pre-Depends), which
    apt installs with them (python3-venv brings python3)."""
    status, seen, todo = dpkg_status(), set(), list(packages)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        fields = status.get(name, {})
        for group in ", ".join(filter(None, (fields.get("Depends"), fields.get("Pre-Depends")))).split(","):
            for alternative in group.split("|"):
                dep = alternative.split("(")[0].split(":")[0].strip()
                if dep in status:
                    todo.append(dep)
                    break
    return seen


def package_of(program: str) -> str | None:
    owners = dpkg_owners()
    if program in owners:
        return owners[program]
    resolved = shutil.which(program)
    if resolved:  # a symlink (python3 -> python3.11, alternatives) owned under its real name
        real = Path(resolved).resolve()
        for candidate in (real.name, Path(resolved).name):
            if candidate in owners:
                return owners[candidate]
    return None


needs_dpkg = pytest.mark.skipif(not (DPKG / "status").exists(), reason="not a Debian machine (no dpkg database)")


def test_the_scan_finds_the_programs_we_know_are_run() -> None:
    found = set().union(*programs_by_source().values())
    # the encoder, the voice, the tree's helpers, the OCR and the browser of the tests
    assert {"ffmpeg", "ffprobe", "espeak-ng", "paplay", "pacat", "Xvfb", "openbox", "xterm", "tmux", "pulseaudio",
            "pactl", "xdpyinfo", "xprop", "tesseract", "chromium", "chromedriver", "git", "xdotool"} <= found, found
    assert shell_programs("exec foo -x; a=$(bar 1 | baz) # qux\ncat <<EOF\nnotme\nEOF\ntimeout 5 quux") \
        == {"foo", "bar", "baz", "cat", "quux"}


@needs_dpkg
def test_every_program_run_is_installed_by_setup() -> None:
    lists = setup_lists()
    installed = with_dependencies(set(lists["HOST_PACKAGES"]) | set(lists["TEST_PACKAGES"]))
    problems = []
    for source, programs in sorted(programs_by_source().items()):
        for program in sorted(programs):
            if program in ELSEWHERE:
                continue
            package = package_of(program)
            if package is None and program in lists["TEST_OPTIONAL"]:
                continue  # not offered by this machine's apt sources; its test skips, saying so
            if package is None:
                problems.append(f"{source} runs {program!r}: no Debian package on this machine provides it "
                                "(install it and add it to scripts/setup.sh)")
            elif package not in installed | set(lists["TEST_OPTIONAL"]) | base_packages():
                problems.append(f"{source} runs {program!r} from Debian's {package}, which scripts/setup.sh "
                                "does not install")
    assert not problems, "\n".join(problems)


@needs_dpkg
def test_the_image_installs_what_the_appliance_runs() -> None:
    """What appliance/ and the tree's scripts run (not the tests) is in the Dockerfile's list:
    scrot is optional there (x11grab takes thumbnails), supervisord comes from the venv."""
    image = with_dependencies(dockerfile_packages())
    optional = {"scrot"}
    problems = []
    for source, programs in sorted(programs_by_source().items()):
        if source.startswith(("tests/", "bench/")):
            continue
        for program in sorted(programs - set(ELSEWHERE) - optional):
            package = package_of(program)
            if package and package not in image | base_packages():
                problems.append(f"{source} runs {program!r} ({package}): not in the Dockerfile's apt-get install")
    assert not problems, "\n".join(problems)


def test_setup_host_list_leaves_the_test_tools_out() -> None:
    """A streaming host gets no browser, OCR or kubectl (`scripts/go.sh --live` runs plain setup)."""
    lists = setup_lists()
    assert not set(lists["HOST_PACKAGES"]) & {"chromium", "chromium-driver", "tesseract-ocr", "kubectl", "git"}
    go = (REPO / "scripts" / "go.sh").read_text()
    assert "setup.sh --test" not in go and "bash scripts/setup.sh" in go
    assert "scripts/setup.sh --test" in (REPO / "scripts" / "test.sh").read_text()
