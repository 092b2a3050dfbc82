"""compose.yaml as users run it, driven by podman-compose on the project's engine (podman).

  * :class:`ComposeProject` — a copy of compose.yaml, overlays/ and a config in a fresh folder,
    with its own project and container names (``<name>-live``, ``<name>-rehearsal``), so runs of
    several checkouts on one engine never meet; ``up``/``run``/``exec``/``logs``/``copy_out``/
    ``down`` (the context manager's exit).
  * :class:`RemoteSandbox` — the sandbox inside the rehearsal container over its HTTP (host
    network): the request log, a viewer's comment, the public chat; :func:`sandbox_origin` finds
    its address in the container's log.
  * :data:`REHEARSAL_CONFIG` — where `appliance rehearse` writes the config of the appliance it
    runs in the sandbox service (the CLI inside the container reaches it with ``--config``).

Shared by tests/e2e/test_deploy_containers.py, tests/e2e/test_image_show.py and bench/soak.py.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
REHEARSAL_CONFIG = "/state/rehearsal/appliance.yaml"
REHEARSAL_RECORDINGS = "/state/rehearsal/recordings"


def compose_available() -> str | None:
    """None when podman-compose and podman are there, else why not."""
    try:
        import podman_compose  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "podman-compose (PyPI) drives the compose tests: not installed"
    if not shutil.which("podman"):
        return "podman-compose drives podman: not installed"
    return None


def engine_env() -> dict[str, str]:
    """The environment for the engine's tools: no RETAKE_* variable reaches them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAKE_")}
    env.setdefault("DOCKER_HOST", "unix:///run/podman-docker.sock")
    return env


class ComposeProject:
    """compose.yaml in a folder of its own: ``config`` is the appliance.yaml (default: the
    example, copied unedited); ``network_mode`` is APPLIANCE_NETWORK_MODE (bridge or host)."""

    def __init__(self, image: str, *, prefix: str = "apc", config: dict[str, Any] | None = None,
                 network_mode: str = "bridge", profile: str = "sandbox") -> None:
        self.dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"{prefix}-{secrets.token_hex(4)}"
        self.name = f"{prefix}{os.getpid()}{secrets.token_hex(2)}"
        self.live, self.rehearsal = f"{self.name}-live", f"{self.name}-rehearsal"
        self.profile = profile
        self.dir.mkdir(mode=0o755)
        shutil.copy(REPO / "compose.yaml", self.dir / "compose.yaml")
        shutil.copytree(REPO / "overlays", self.dir / "overlays")
        (self.dir / "config").mkdir()
        target = self.dir / "config" / "appliance.yaml"
        if config is None:
            shutil.copy(REPO / "config.example.yaml", target)
        else:
            target.write_text(yaml.safe_dump(config, sort_keys=False))
        subprocess.run(["chmod", "-R", "a+rX", str(self.dir)], check=True)
        self.env = dict(engine_env(), APPLIANCE_IMAGE=image, APPLIANCE_CONTAINER=self.live,
                        APPLIANCE_REHEARSAL_CONTAINER=self.rehearsal, APPLIANCE_NETWORK_MODE=network_mode)

    def __enter__(self) -> ComposeProject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``podman-compose -p NAME --profile PROFILE ARGS`` in the project's folder."""
        return subprocess.run([sys.executable, "-m", "podman_compose", "-p", self.name, "--profile", self.profile,
                               *args], cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout)

    def up(self, *services: str) -> None:
        started = self.compose("up", "-d", *services)
        if started.returncode != 0:
            raise AssertionError(f"compose up failed:\n{started.stdout}{started.stderr}")

    def exec(self, container: str, *command: str, timeout: float = 60,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "exec", *(["-i"] if stdin is not None else []), container, *command],
                              input=stdin, capture_output=True, text=True, timeout=timeout, env=self.env)

    def appliance(self, container: str, *args: str, config: str = REHEARSAL_CONFIG, timeout: float = 60) -> str:
        """`appliance --config CONFIG ARGS` inside ``container``; its output, or AssertionError."""
        done = self.exec(container, "appliance", "--config", config, *args, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"appliance {' '.join(args)} in {container}: {done.stdout}{done.stderr}")
        return done.stdout

    def logs(self, container: str, tail: int | None = None) -> str:
        args = ["podman", "logs", *(["--tail", str(tail)] if tail else []), container]
        done = subprocess.run(args, capture_output=True, text=True, env=self.env, timeout=60)
        return done.stdout + done.stderr

    def inspect(self, container: str) -> dict[str, Any]:
        import json
        out = subprocess.run(["podman", "inspect", container], capture_output=True, text=True, env=self.env,
                             timeout=30).stdout
        return json.loads(out)[0] if out.strip().startswith("[") else {}

    def copy_out(self, container: str, path: str, dest: Path) -> Path:
        """``podman cp`` (works on a stopped container too)."""
        subprocess.run(["podman", "cp", f"{container}:{path}", str(dest)], check=True, env=self.env, timeout=120)
        return dest

    def down(self) -> None:
        self.compose("down", "-v", "-t", "5", timeout=180)
        shutil.rmtree(self.dir, ignore_errors=True)


class RemoteSandbox:
    """The sandbox inside the rehearsal container, over its HTTP (host network): the request log,
    the platform's state, a viewer's comment, and the agent's messages in its public chat."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.http = requests.Session()
        self.http.trust_env = False

    def requests(self) -> list[dict]:
        return self.http.get(f"{self.origin}/_sandbox/requests", timeout=10).json()["requests"]

    def state(self) -> dict:
        return self.http.get(f"{self.origin}/_sandbox/state", timeout=10).json()

    def post_comment(self, text: str, username: str) -> None:
        self.http.post(f"{self.origin}/_sandbox/comments", json={"text": text, "username": username},
                       timeout=10).raise_for_status()

    def agent_messages(self, user_id: str, pages: int = 500) -> list[str]:
        """The agent's own messages in its chat, oldest first (the public chat endpoint, paged
        back with before_chat_event_id; at most ``pages`` pages of 100)."""
        chats: list[dict] = []
        before = None
        for _ in range(pages):
            params: dict[str, str | int] = {"streamer_id": user_id, "limit": 100}
            if before:
                params["before_chat_event_id"] = before
            page = self.http.get(f"{self.origin}/api/v1/chat/", params=params, timeout=10).json()["chats"]
            chats += page
            if len(page) < 100:
                break
            before = page[-1]["chat_event_id"]
        return [c["text"] for c in reversed(chats) if c.get("sender_user_id") == user_id]


def sandbox_origin(project: ComposeProject) -> str | None:
    found = re.search(r"sandbox retake\.tv at (http://127\.0\.0\.1:\d+)/api/v1", project.logs(project.rehearsal))
    return found.group(1) if found else None
