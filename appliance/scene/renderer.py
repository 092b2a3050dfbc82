"""The scene renderer: one process (supervisord's ``scene`` program) that draws the on-screen
layout into the X display. ``python -m appliance.scene.renderer --scene-dir DIR --size WxH --display :N --socket PATH``.

It loads the scene templates (:mod:`.template`) from the scene folder and watches it
(watchdog): an edited template is live at once; a broken one is logged with its file and
key, and the last good version stays on screen. It takes :class:`~.state.SceneState`
snapshots from the controller on a unix socket (:mod:`.link`) and redraws only the regions
whose content changed (:meth:`Painter.key`), uploading only their rectangles. Idle, it sleeps
in ``select`` until a message, an X event, a template change or the next timed change (an
alert expiring, the uptime's next minute, the avatar's next mouth shape, blink or breath step).
Avatar packs (``avatars/NAME/`` in the scene folder) are watched the same way: a broken one is
logged with its file and the last good one stays.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cairocffi as cairo

from ..core.errors import ApplianceError, ConfigError
from .avatar.view import AvatarView
from .draw import Painter, Rect
from .link import SceneServer
from .model import SceneState
from .template import AlertRegion, AvatarRegion, Scene, StatsRegion, load_scene, scene_files

log = logging.getLogger("appliance.scene")
FALLBACK = Scene(name="blank")


class Renderer:
    """Keeps the screen equal to (templates, state); ``output`` is an :class:`XWindow` (or
    anything with ``present(image, rects)``, ``set_cover(bool)``, ``place_content(rect)``)."""

    def __init__(self, folder: Path, width: int, height: int, *, output: Any = None,
                 default: str = "live", clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic, avatar: AvatarView | None = None) -> None:
        self.folder = Path(folder)
        self.painter = Painter(width, height, images=self.image,
                               avatar=avatar or AvatarView(self.folder / "avatars"))
        self.output = output
        self.default = default
        self.clock = clock
        self.mono = mono
        self.scenes: dict[str, Scene] = {}
        self.errors: dict[str, str] = {}
        self.state = SceneState(scene=default)
        self._images: dict[str, Any] = {}
        self._shown: Scene | None = None
        self._keys: list[tuple[object, ...]] = []
        self.frames = 0
        self.regions_drawn = 0
        self.load_all()

    # -- templates --

    def load(self, name: str, path: Path | None) -> None:
        """(Re)load one template; a broken one keeps the last good version."""
        if path is None or not path.exists():
            if self.scenes.pop(name, None) is not None:
                log.info("scene %s removed", name)
            return
        try:
            scene = load_scene(path)
        except ConfigError as exc:
            self.errors[name] = str(exc)
            log.error("scene template broken, keeping the last good %s on screen: %s", name, exc)
            return
        self.errors.pop(name, None)
        self.scenes[name] = scene
        self._images.clear()
        log.info("scene %s loaded (%d regions)", name, len(scene.regions))

    def load_all(self) -> None:
        for name, path in scene_files(self.folder).items():
            self.load(name, path)

    def image(self, name: str) -> Any:
        if name not in self._images:
            from .feeds import read_feed
            data = read_feed(self.folder / name, 8 * 1024 * 1024)
            surface = None
            if data is not None:
                import io
                try:
                    surface = cairo.ImageSurface.create_from_png(io.BytesIO(data))
                except Exception as exc:
                    log.warning("image %s not shown: %s", name, exc)
            self._images[name] = surface
        return self._images[name]

    def current(self) -> Scene:
        return self.scenes.get(self.state.scene) or self.scenes.get(self.default) or FALLBACK

    # -- drawing --

    def set_state(self, state: SceneState) -> None:
        if state.scene and state.scene not in self.scenes:
            log.warning("no scene %r: staying on %s", state.scene, self.current().name)
        speech, before = state.avatar.speech, self.state.avatar.speech
        if speech is not None and (before is None or before.id != speech.id):
            # how early the mouth's timings arrive: under 0 ms, the mouth is late by that much
            log.debug("speech %s: %d mouth cues, the sound %.0f ms ahead", speech.id, len(speech.cues),
                      (speech.start - self.mono()) * 1000)
        self.state = state

    def render(self) -> list[Rect]:
        """Draw what changed since the last call and present it; the rectangles drawn."""
        scene, now = self.current(), self.clock()
        self.painter.mono = self.mono()
        keys = [self.painter.key(region, self.state, now) for region in scene.regions]
        if scene is not self._shown:
            dirty = set(range(len(scene.regions)))
            full = [(0, 0, self.painter.width, self.painter.height)]
            self.painter.clear(scene, full[0])
        else:
            dirty = {i for i, key in enumerate(keys) if key != self._keys[i]}
            full = []
        if not dirty:
            return []
        rects = [self.painter.rect(scene.regions[i].box) for i in dirty]
        # overlapping regions are redrawn together, in template order
        grown = True
        while grown:
            grown = False
            for i, region in enumerate(scene.regions):
                if i not in dirty and any(_overlap(self.painter.rect(region.box), r) for r in rects):
                    dirty.add(i)
                    rects.append(self.painter.rect(region.box))
                    grown = True
        if not full:
            for rect in rects:
                self.painter.clear(scene, rect)
        for i in sorted(dirty):
            self.painter.draw(scene, scene.regions[i], self.state, now)
        self.regions_drawn += len(dirty)
        self.frames += 1
        changed_scene = scene is not self._shown
        self._shown, self._keys = scene, keys
        presented = full or rects
        if self.output is not None:
            if changed_scene:
                content = scene.content
                self.output.set_cover(content is None)
                if content is not None:
                    self.output.place_content(self.painter.rect(content.box))
            self.output.present(self.painter.surface, presented)
        return presented

    def next_deadline(self) -> float | None:
        """When the picture changes by itself next (an alert ends, the uptime's minute turns)."""
        scene, now = self.current(), self.clock()
        times = []
        if any(isinstance(r, AlertRegion) for r in scene.regions):
            times += [a.until for a in self.state.alerts if a.until > now]
        since = self.state.stats.live_since
        if since and any(isinstance(r, StatsRegion) for r in scene.regions):
            times.append(now + 60 - ((now - since) % 60) + 0.05)
        return min(times) if times else None

    def timeout(self) -> float | None:
        """Seconds until the picture changes by itself (None: only a message or an event changes it)."""
        scene = self.current()
        waits = []
        deadline = self.next_deadline()
        if deadline is not None:
            waits.append(deadline - self.clock())
        avatars = [(r, self.painter.inner(r)) for r in scene.regions if isinstance(r, AvatarRegion)]
        if avatars:
            mono = self.mono()
            change = self.painter.avatar.next_change(avatars, self.state, mono)
            if change is not None:
                waits.append(change - mono)
        return max(0.0, min(waits)) if waits else None

    def reload_pack(self, name: str) -> None:
        """A pack's files changed: load it again (a broken one keeps the last good)."""
        store = self.painter.avatar.store
        if store is not None:
            store.reload(name)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


# --- the process ------------------------------------------------------------------------------

class _Watch:
    """Template changes from watchdog, handed to the select loop through a pipe."""

    def __init__(self, folder: Path) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.changed: set[str] = set()
        self.packs: set[str] = set()
        self.lock = threading.Lock()
        watch = self
        avatars = folder / "avatars"

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type not in ("created", "modified", "moved", "deleted"):
                    return  # "opened"/"closed": our own reads would wake us forever
                for attr in ("src_path", "dest_path"):
                    path = Path(str(getattr(event, attr, "") or ""))
                    if path.suffix not in (".yaml", ".png"):
                        continue
                    with watch.lock:
                        if path.parent.parent == avatars:     # avatars/NAME/file: a pack
                            watch.packs.add(path.parent.name)
                        elif path.parent == folder:
                            watch.changed.add(path.name)
                    os.write(watch.write_fd, b"x")

        self.observer = Observer()
        folder.mkdir(parents=True, exist_ok=True)
        self.observer.schedule(Handler(), str(folder), recursive=False)
        if avatars.is_dir() and not avatars.is_symlink():
            self.observer.schedule(Handler(), str(avatars), recursive=True)
        self.observer.daemon = True
        self.observer.start()

    def take(self) -> set[str]:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        with self.lock:
            changed, self.changed = self.changed, set()
        return changed

    def take_packs(self) -> set[str]:
        with self.lock:
            packs, self.packs = self.packs, set()
        return packs

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(3)


def serve(renderer: Renderer, server: SceneServer, *, output: Any, folder: Path,
          stop: threading.Event) -> None:
    """The select loop: until ``stop`` is set (SIGTERM)."""
    watch = _Watch(folder)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    try:
        renderer.render()
        while not stop.is_set():
            timeout = renderer.timeout()
            fds = [*server.fds(), watch.read_fd, wake_r] + ([output.fileno()] if output is not None else [])
            ready, _, _ = select.select(fds, [], [], timeout)
            for fd in ready:
                if fd == server.fileno():
                    server.accept()
                elif fd in server.clients:
                    state = server.read(fd)
                    if state is not None:
                        renderer.set_state(state)
                elif fd == watch.read_fd:
                    for pack in watch.take_packs():
                        renderer.reload_pack(pack)
                    for name in watch.take():
                        if name.endswith(".png"):
                            renderer._images.clear()
                            renderer._shown = None
                        else:
                            stem = name.removesuffix(".yaml")
                            renderer.load(stem, scene_files(folder).get(stem))
                            if stem == renderer.current().name:
                                renderer._shown = None
                elif (output is not None and fd == output.fileno() and output.pump()
                      and (content := renderer.current().content) is not None):
                    output.place_content(renderer.painter.rect(content.box))  # a window appeared: place it again
            renderer.render()
    finally:
        signal.set_wakeup_fd(-1)
        watch.stop()


def main(argv: list[str] | None = None) -> int:
    """The renderer process (scripts/start-scene.sh): everything it needs comes as arguments, which
    `appliance up` computes from the config (APPLIANCE_SCENE_DIR, APPLIANCE_WIDTH, ...)."""
    from ..core.logs import setup_logging
    from .window import XWindow
    parser = argparse.ArgumentParser(prog="python -m appliance.scene.renderer")
    parser.add_argument("--scene-dir", required=True, type=Path, help="the scene templates (scene.dir)")
    parser.add_argument("--size", required=True, help="WIDTHxHEIGHT of the display (stream.width, stream.height)")
    parser.add_argument("--display", required=True, help="the X display (stream.display)")
    parser.add_argument("--default", default="live", help="the scene shown first (scene.default)")
    parser.add_argument("--socket", required=True, help="the unix socket to listen on")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        width, height = (int(v) for v in args.size.lower().split("x", 1))
    except ValueError:
        parser.error(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    folder = args.scene_dir
    try:
        output = XWindow(args.display, width, height)
        renderer = Renderer(folder, width, height, output=output, default=args.default)
        server = SceneServer(Path(args.socket))
    except ApplianceError as exc:
        print(f"scene renderer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("scene renderer on %s (%dx%d), templates in %s, socket %s", args.display, width, height,
             folder, args.socket)
    try:
        serve(renderer, server, output=output, folder=folder, stop=stop)
    finally:
        server.close()
        output.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
