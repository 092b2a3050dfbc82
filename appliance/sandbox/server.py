"""Run the sandbox: :class:`Sandbox` (a context manager for tests) and :func:`run_sandbox_cli`.

``Sandbox`` runs the aiohttp app on its own event loop in a background thread, then the nginx
RTMP ingest (whose callbacks come back to that app). Its helpers (``requests()``,
``post_comment()``, ``set_fault()``, ...) run the same code as the ``/_sandbox/`` control surface,
on the sandbox's loop, so tests need no HTTP for them.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from aiohttp import web

from . import viewers
from .platform import COMMENT_SHAPES, SKILL_VERSION, ApiError, Platform, Settings
from .routes import SandboxApp, create_app, socket_clients
from .rtmp import IngestError, RtmpIngest, find_nginx

T = TypeVar("T")


class SandboxError(RuntimeError):
    """The sandbox could not start; the message is one line saying why and what to do."""


class Sandbox:
    """A local retake.tv: REST + Socket.IO on ``127.0.0.1:port`` and (optionally) an RTMP ingest."""

    def __init__(self, port: int = 0, rtmp: bool = True, viewer_interval: float = 0.0,
                 state_dir: str | Path | None = None, comments_shape: str = "documented", *,
                 host: str = "127.0.0.1", record_dir: str | Path | None = None, rtmp_port: int = 0,
                 skill_version: str = SKILL_VERSION, simulator_seed: int | None = None,
                 on_request: Callable[[dict[str, Any]], None] | None = None) -> None:
        if comments_shape not in COMMENT_SHAPES:
            raise ValueError(f"comments_shape must be one of {COMMENT_SHAPES}")
        self.host, self.port, self.rtmp_enabled = host, port, rtmp
        settings = Settings(comments_shape=comments_shape, skill_version=skill_version,
                            viewer_interval=max(0.0, viewer_interval))
        self.platform = Platform(settings=settings, state_dir=Path(state_dir) if state_dir else None)
        self.app_state = SandboxApp(self.platform)
        if on_request is not None:
            self.app_state.log.listeners.append(on_request)
        self.platform.event_hook = self.app_state.log.add
        self.simulator = viewers.ViewerSimulator(self.platform, seed=simulator_seed)
        self._record_dir = Path(record_dir) if record_dir else None
        self._rtmp_port = rtmp_port
        self.ingest: RtmpIngest | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = threading.Event()

    # ----- addresses ---------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"

    @property
    def rtmp_url(self) -> str | None:
        return self.ingest.url if self.ingest else None

    @property
    def record_dir(self) -> Path | None:
        return self.ingest.record_dir if self.ingest else None

    # ----- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> Sandbox:
        if self.rtmp_enabled:
            try:
                find_nginx()
            except IngestError as exc:
                raise SandboxError(str(exc)) from None
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, errors), name="sandbox-http", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or errors:
            self.stop()
            raise SandboxError(f"sandbox HTTP server did not start on {self.host}:{self.port}: "
                               f"{errors[0] if errors else 'timeout'}")
        self.platform.origin = self.origin
        if self.rtmp_enabled:
            self._start_ingest()
        return self

    def _start_ingest(self) -> None:
        self.ingest = RtmpIngest(callback_base=f"{self.origin}/_sandbox/rtmp", record_dir=self._record_dir,
                                 port=self._rtmp_port)
        try:
            # Started from the loop thread, which lives exactly as long as the sandbox: nginx's
            # parent-death signal is tied to the thread that forked it (see rtmp._die_with_parent).
            self.call(self.ingest.start, timeout=30)
        except (IngestError, OSError) as exc:
            self.close()
            raise SandboxError(f"RTMP ingest: {exc}") from None
        self.platform.rtmp_url = self.ingest.url
        self.app_state.recordings = self._recordings_payload

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()
            self._stopped.set()

    async def _startup(self) -> None:
        app = create_app(self.app_state)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if not self.port and server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        self._sim_task = asyncio.get_running_loop().create_task(self.simulator.run())

    async def _shutdown(self) -> None:
        self._sim_task.cancel()
        sio = self.app_state.sio
        if sio is not None:
            for sid in [sid for sid, _eio in sio.manager.get_participants("/", None)]:
                await sio.disconnect(sid)
            await sio.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        if self.ingest is not None:
            self.ingest.stop()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        self._thread = None

    def close(self) -> None:
        """Stop and remove the ingest's temp folder (recordings in it go too)."""
        self.stop()
        if self.ingest is not None:
            self.ingest.cleanup()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- helpers (same logic as /_sandbox/) ------------------------------------------------------
    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn()`` (sync, or returning an awaitable) on the sandbox loop and return its result."""
        if self._loop is None:
            raise SandboxError("sandbox is not running")

        async def run() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self.call(lambda: self.app_state.log.since(since))

    def clear_requests(self) -> None:
        self.call(self.app_state.log.entries.clear)

    def post_comment(self, text: str, username: str = "viewer1", user_db_id: str | None = None, *,
                     wallet: str | None = None) -> dict[str, Any]:
        """A viewer's comment; ``username=""`` posts as an anonymous viewer (``wallet``, or a new one)."""
        return self.call(lambda: viewers.post_comment(self.platform, self.platform.the_agent(user_db_id), username,
                                                      text, wallet=wallet))

    def event(self, kind: str, username: str = "pixelpilgrim", user_db_id: str | None = None,
              amount: float | None = None, action: str = "buy") -> dict[str, Any]:
        """A follow, tip or trade, as ``POST /_sandbox/events`` makes them."""
        def make() -> Any:
            streamer = self.platform.the_agent(user_db_id)
            if kind == "follow":
                return viewers.follow(self.platform, streamer, username)
            if kind == "tip":
                return viewers.tip(self.platform, streamer, username, amount or 0.1)
            if kind == "trade":
                return viewers.trade(self.platform, streamer, username, amount or 25.0, action)
            raise ApiError(400, "kind must be follow, tip or trade")
        return self.call(make)

    def warn(self, text: str, user_db_id: str | None = None) -> dict[str, Any]:
        """A platform notice (a shutdown warning), as ``POST /_sandbox/warning`` makes it."""
        async def warn() -> dict[str, Any]:
            return (await self.platform.warn(self.platform.the_agent(user_db_id), text)).public()
        return self.call(warn)

    def pin(self, message_id: str, pinned: bool = True, user_db_id: str | None = None) -> dict[str, Any]:
        """Pin (or unpin) a message, as ``POST /_sandbox/pin`` does."""
        return self.call(lambda: self.platform.pin(self.platform.the_agent(user_db_id), message_id, pinned))

    def sockets(self) -> dict[str, Any]:
        """The Socket.IO clients with their rooms, and what they asked for (``GET /_sandbox/sockets``)."""
        return self.call(lambda: {"clients": socket_clients(self.app_state.sio),
                                  "events": list(self.app_state.socket_log.entries)})

    def set_fault(self, status: int = 500, count: int | None = None, seconds: float | None = None,
                  paths: str | None = None, *, kind: str = "status", retry_after: float | None = None,
                  delay_s: float | None = None) -> dict[str, Any]:
        """Inject a fault, as ``POST /_sandbox/faults`` does (kinds: see ``app.py``)."""
        body = {"kind": kind, "status": status, "count": count, "seconds": seconds, "paths": paths,
                "retry_after": retry_after, "delay_s": delay_s}
        return self.call(lambda: self.app_state.faults.add({k: v for k, v in body.items() if v is not None}).public())

    def clear_faults(self) -> None:
        self.call(self.app_state.faults.rules.clear)

    def faults(self, include_done: bool = False) -> list[dict[str, Any]]:
        """The active faults with their hits, as ``GET /_sandbox/faults`` lists them (``?all=1``: finished ones too)."""
        return self.call(lambda: self.app_state.faults.public(include_done))

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Change settings (comments_shape, comments_order, register_shape, rtmp_shape, field_drift,
        verify_rejects, skill_version, viewer_interval, idle_viewers, and the Socket.IO switches
        socket_ack, joined_room_event, socket_extras)."""
        def apply() -> dict[str, Any]:
            self.platform.settings.update(changes)
            return self.platform.snapshot()["settings"]
        return self.call(apply)

    def recordings(self) -> list[dict[str, Any]]:
        return self.call(lambda: self._recordings_payload()["recordings"])

    def state(self) -> dict[str, Any]:
        return self.call(self.platform.snapshot)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    def _recordings_payload(self) -> dict[str, Any]:
        if self.ingest is None:
            return {"recordings": [], "record_dir": None}
        return {"recordings": self.ingest.recordings(self.platform.recordings_done),
                "record_dir": str(self.ingest.record_dir)}


def _format_entry(entry: dict[str, Any]) -> str:
    clock = entry["time"][11:19]
    if entry.get("method") == "RTMP":
        return f"{clock} RTMP {entry['path']} -> {entry['status']} (key {entry.get('key')}, agent {entry.get('agent')})"
    extra = " auth" if entry.get("auth") else ""
    if entry.get("fault"):
        extra += " [injected fault]"
    if "image" in entry:
        extra += f" image={entry['image'].get('format')}/{entry['image'].get('bytes')}B"
    return f"{clock} {entry['method']} {entry['path']} -> {entry['status']}{extra}"


def run_sandbox_cli(host: str, port: int, rtmp: bool, viewer_interval: float, comments_shape: str,
                    record_dir: str | None) -> int:
    """Run the sandbox in the foreground until Ctrl-C / SIGTERM; 0 on a clean stop, 1 if it can't start."""
    def printer(entry: dict[str, Any]) -> None:
        print(_format_entry(entry), flush=True)

    try:
        sandbox = Sandbox(port=port, rtmp=rtmp, viewer_interval=viewer_interval, comments_shape=comments_shape,
                          host=host, record_dir=record_dir, on_request=printer)
        sandbox.start()
    except (SandboxError, ValueError, OSError) as exc:
        print(f"sandbox: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"sandbox: base_url {sandbox.base_url}   (retake.base_url in the config, with retake.sandbox: true)",
              flush=True)
        print(f"sandbox: control surface {sandbox.origin}/_sandbox/state", flush=True)
        if sandbox.ingest is not None:
            print(f"sandbox: RTMP ingest {sandbox.rtmp_url} (keys from POST /agent/rtmp)", flush=True)
            print(f"sandbox: recordings land in {sandbox.record_dir}", flush=True)
        else:
            print("sandbox: RTMP ingest off", flush=True)
        print(f"sandbox: simulated viewers {f'every {viewer_interval:g}s' if viewer_interval > 0 else 'off'}; "
              f"comments shape {comments_shape}; Ctrl-C stops", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.stop()
        print("sandbox: stopped", flush=True)
    return 0
