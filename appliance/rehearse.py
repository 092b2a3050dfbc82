"""`appliance rehearse`: the sandbox plus the whole appliance against it, live, until Ctrl-C.

Everything of a rehearsal lives in ``<state_dir>/rehearsal/`` (its own credentials, state,
config and the sandbox's recordings), so it never touches the real credentials. The agent
profile is the user's config; only the platform is swapped for the local sandbox — going
live for real is the same config with the sandbox switched off (`appliance up`).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .config import Settings, load_config, parse_config
from .core.files import StateLayout, ensure_private_dir, write_private
from .core.sanitize import clean_text
from .core.secrets import collect
from .media.display import free_display
from .retake.client import RetakeClient
from .retake.credentials import ENV_TOKEN, without_token_environment
from .retake.verification import register_agent

SIMULATED_TWEET = "https://x.com/rehearsal/status/1000000000000000001"


def rehearsal_settings(base: Settings, layout: StateLayout, base_url: str) -> dict[str, Any]:
    data = base.model_dump(mode="json", exclude_none=True)
    data["retake"].update(base_url=base_url, sandbox=True)
    data["paths"] = {"credentials": str(layout.rehearsal_credentials), "state_dir": str(layout.rehearsal_state)}
    data["stream"]["display"] = free_display()
    data["overlay"].pop("content_log", None)
    if "watch_dir" not in data["overlay"] and Path("overlays").is_dir():
        data["overlay"]["watch_dir"] = str(Path("overlays").resolve())  # the repo's examples
    data["notify"] = {}
    data["control"] = {"port": 0}
    return data


def _watch_chat(origin: str, user_id: str, out: Callable[[str], None], stop: threading.Event) -> Any:
    """Print the stream's chat as it happens (Socket.IO, as a viewer would see it)."""
    import socketio  # the client from python-socketio
    sio = socketio.Client(reconnection=True, reconnection_attempts=5)

    @sio.on("message")
    def on_message(data: Any) -> None:
        if isinstance(data, dict):
            name = clean_text(data.get("sender_username") or data.get("username") or "?", 32)
            out(f"chat | {name}: {clean_text(data.get('text', ''), 200)}")

    @sio.event
    def connect() -> None:
        sio.emit("joinRoom", {"roomId": user_id})

    try:
        sio.connect(origin, socketio_path="/socket.io/", transports=["websocket", "polling"], wait_timeout=5)
    except Exception as exc:
        out(f"rehearsal: chat display unavailable ({type(exc).__name__})")
        return None
    return sio


def _print(line: str) -> None:
    print(line, flush=True)


def run_rehearsal(config_path: Path, *, seconds: float = 0, out: Callable[[str], None] = _print,
                  environ: Mapping[str, str] | None = None) -> int:
    """Rehearse ``config_path`` against a fresh sandbox. Nothing of the environment that holds
    or names the real access token (``environ``, default the process's) reaches the sandbox or
    the rehearsal's process tree."""
    from .sandbox import Sandbox
    from .up.privileges import TreeUsers, give, give_state
    from .up.tree import ProcessTree, make_runtime_dir, tree_environment

    environ = without_token_environment(os.environ if environ is None else environ)
    base = load_config(config_path)
    layout = base.layout
    users = TreeUsers.from_environment(environ)
    give_state(base.state_dir, users)  # as root (the image): the state folder to the controller's user
    root = layout.rehearsal
    shutil.rmtree(root, ignore_errors=True)
    ensure_private_dir(root)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    out(f"rehearsal: everything goes under {root}")
    try:
        with Sandbox(port=0, rtmp=True, viewer_interval=6.0, record_dir=layout.rehearsal_recordings) as sb:
            out(f"rehearsal: sandbox retake.tv at {sb.base_url}, RTMP ingest {sb.rtmp_url}")
            data = rehearsal_settings(base, layout, sb.base_url)
            cfg_path = layout.rehearsal_config
            write_private(cfg_path, yaml.safe_dump(data, sort_keys=False))
            settings = parse_config(data, str(cfg_path))
            creds, _ = register_agent(settings, RetakeClient(settings.retake), environ=environ)
            client = RetakeClient(settings.retake, creds.access_token)
            message = client.prepare_verify().verification_message
            client.verify(SIMULATED_TWEET)
            out(f"rehearsal: registered {creds.agent_name} in the sandbox and verified it with a simulated "
                f"tweet of {message!r} (for real, a human posts it)")
            give(root, users.controller)  # what was written here as root (config, credentials)
            runtime_dir, _ = make_runtime_dir({})
            # a real token must never reach the sandbox: the tree gets no variable that holds or names it
            env = tree_environment(cfg_path, settings, runtime_dir=runtime_dir, environ=environ, users=users)
            chat = _watch_chat(sb.origin, creds.userDbId, out, stop)
            started = time.monotonic()
            # the rehearsal's secrets (an LLM key, ...) as files, never the real access token
            secrets = collect([ref for ref in settings.secret_refs() if ref.name != ENV_TOKEN], environ=environ)
            tree = ProcessTree(env, secrets={name: hit.value for name, hit in secrets.items()}).start()
            try:
                while not stop.is_set() and tree.alive():
                    if seconds and time.monotonic() - started >= seconds:
                        break
                    stop.wait(1.0)
                out("rehearsal: stopping (stream/stop, then every process)")
            finally:
                status = tree.stop()
                if chat is not None:
                    chat.disconnect()
                shutil.rmtree(runtime_dir, ignore_errors=True)
            for rec in sb.recordings():
                out(f"rehearsal: recording {rec.get('path')} ({rec.get('size', 0)} bytes) — play it with ffplay")
            out(f"rehearsal: ended with status {status}; the appliance's state is in {layout.rehearsal_state}")
            return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
