"""The process tree (`appliance up`) with real Xvfb, openbox, PulseAudio, xterm and supervisord.

(a) every program reaches RUNNING, the sink exists at the configured rate, the content window
    is on screen; (b) killed helpers come back; (c) SIGTERM or SIGINT to `appliance up` leaves nothing
    alive; (d) the image builds and, run with host networking, pushes a stream to an ingest.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

import pytest

from appliance.retake.credentials import Credentials, Secret, save_credentials
from appliance.up.tree import PROGRAMS, ProcessTree, content_geometry
from tests.support.sandbox import WALLET, SandboxAgent, register_agent
from tests.support.tree import (
    FAKE_TOKEN,
    REPO,
    STANDIN_CONTROLLER,
    BuiltImage,
    TreeRun,
    appliance_image,
    descendants,
    docker_client,
    free_display,
    process_environ,
    process_name,
    process_tree,
    short_tmpdir,
    standin_ffmpeg_controller,
    start_time,
    start_up_process,
    terminate,
    wait_all_ended,
    wait_until,
    write_config,
)

__all__ = ["appliance_image", "docker_client", "process_tree"]  # fixtures for pytest

NEEDED = ("Xvfb", "openbox", "xterm", "pulseaudio", "pactl", "xdpyinfo", "scrot", "ffmpeg")
missing = [tool for tool in NEEDED if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)} (run scripts/setup.sh)")

RESTART_BOUND_S = 20.0


def sinks(run: TreeRun) -> dict[str, str]:
    out = subprocess.run(["pactl", "--server", f"unix:{run.pulse_socket}", "list", "short", "sinks"],
                         capture_output=True, text=True, timeout=10, check=False).stdout  # "" while down
    return {fields[1]: fields[3] for fields in (line.split("\t") for line in out.splitlines()) if len(fields) > 3}


def green_pixels(display: str, folder: Path, size: tuple[int, int], env: dict[str, str] | None = None) -> int:
    """Screenshot the display with scrot, decode it with FFmpeg, count bright green pixels."""
    shot = folder / "shot.png"
    shot.unlink(missing_ok=True)
    subprocess.run(["scrot", "-o", str(shot)], env=env or dict(os.environ, DISPLAY=display),
                   check=True, timeout=15, capture_output=True)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(shot), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, timeout=15, capture_output=True).stdout
    assert len(raw) == size[0] * size[1] * 3
    return sum(1 for i in range(0, len(raw), 3) if raw[i + 1] > 150 and raw[i] < 100 and raw[i + 2] < 100)


def tree_green_pixels(run: TreeRun, folder: Path) -> int:
    return green_pixels(run.display, folder, (run.settings.stream.width, run.settings.stream.height), run.x_env())


def window_tree(display: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["xwininfo", "-root", "-tree", "-display", display], capture_output=True,
                          text=True, timeout=10, check=False, env=env).stdout[-2000:]


# -- (a) ------------------------------------------------------------------------------------

def test_every_program_runs(process_tree: TreeRun) -> None:
    states = process_tree.tree.states()
    assert {name: states.get(name) for name in PROGRAMS} == dict.fromkeys(PROGRAMS, "RUNNING"), \
        process_tree.log_tail()
    assert states["on-controller-exit"] == "RUNNING"


def test_sink_exists_at_the_configured_rate(process_tree: TreeRun) -> None:
    found = sinks(process_tree)
    assert "treetest" in found, found
    assert found["treetest"] == "s16le 2ch 48000Hz"  # the config's rate, not PulseAudio's default
    info = subprocess.run(["pactl", "--server", f"unix:{process_tree.pulse_socket}", "info"],
                          capture_output=True, text=True, timeout=10, check=True).stdout
    assert "Default Sink: treetest" in info
    assert "Default Sample Specification: s16le 2ch 48000Hz" in info  # daemon.conf took effect


def test_content_window_is_on_screen(process_tree: TreeRun, tmp_path: Path) -> None:
    content_log = process_tree.settings.content_log()
    with open(content_log, "a", encoding="utf-8") as f:
        for n in range(8):
            f.write(f"hello from the process tree test, line {n} ##########################\n")
    try:
        count = wait_until(lambda: tree_green_pixels(process_tree, tmp_path) > 500, 20, "green text on screen")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; states {process_tree.tree.states()}\n--- windows ---\n"
                             f"{window_tree(process_tree.display, process_tree.x_env())}\n--- tree log ---\n"
                             f"{process_tree.log_tail()}") from None
    assert count


def test_content_window_sits_in_the_scenes_content_region(process_tree: TreeRun, tmp_path: Path) -> None:
    """Undecorated and placed by openbox into the live scene's content region (overlays/live.yaml),
    whole rows only (xterm's resize increments), so its bottom row, where the newest line goes, is
    on screen (the reference's 160x45 xterm ran 300 px past a 720-line screen)."""
    from appliance.scene.draw import Painter
    from appliance.scene.template import load_scene
    wait_until(lambda: tree_green_pixels(process_tree, tmp_path) > 0, 20, "the content window")
    size = process_tree.settings.stream.width, process_tree.settings.stream.height

    def geometry() -> tuple[int, int, int, int]:
        out = subprocess.run(["xwininfo", "-name", "appliance-content", "-display", process_tree.display],
                             capture_output=True, text=True, timeout=10, check=False,
                             env=process_tree.x_env()).stdout
        fields = dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)
        return tuple(int(fields.get(k, "-1")) for k in (  # type: ignore[return-value]
            "Absolute upper-left X", "Absolute upper-left Y", "Width", "Height"))

    x, y, w, h = Painter(*size).rect(load_scene(REPO / "overlays" / "live.yaml").content.box)
    cell_w, cell_h = 12, 23  # DejaVu Sans Mono at size 12, 100 dpi

    def inside() -> bool:
        gx, gy, gw, gh = geometry()
        return (abs(gx - x) <= 2 and abs(gy - y) <= 2 and w - cell_w - 2 <= gw <= w + 2
                and h - cell_h - 2 <= gh <= h + 2)
    try:
        wait_until(inside, 10, f"the window in the content region {(x, y, w, h)}")
    except AssertionError as exc:
        tree = window_tree(process_tree.display, process_tree.x_env())
        raise AssertionError(f"{exc}: {geometry()}\n{tree}") from None


def test_content_window_waits_for_the_window_manager(tmp_path: Path) -> None:
    """A window mapped while openbox starts can stay unmanaged and undrawn (an all-black stream,
    seen about one start in two), so start-content.sh holds the xterm until a WM runs."""
    display, size = free_display(), (320, 180)
    log = tmp_path / "stream.log"
    log.write_text("".join(f"waiting for the window manager, line {n} ##########\n" for n in range(6)))
    env = dict(os.environ, APPLIANCE_DISPLAY=display, APPLIANCE_CONTENT_LOG=str(log), APPLIANCE_FONT_SIZE="12",
               APPLIANCE_FOREGROUND="#00ff00", APPLIANCE_BACKGROUND="#000000", APPLIANCE_WAIT_TIMEOUT="20",
               APPLIANCE_CONTENT_GEOMETRY=content_geometry(*size, 12),
               APPLIANCE_TERMINAL_SOCKET=str(short_tmpdir("wm-") / "terminal.sock"),
               APPLIANCE_WORKSPACE=str(tmp_path / "workspace"), APPLIANCE_TERMINAL_SHELL="/bin/bash",
               APPLIANCE_TERMINAL_LOG_PERCENT="90")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "start_new_session": True}
    terminal = subprocess.Popen([str(REPO / "scripts" / "start-terminal.sh")], env=env, **quiet)
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
                            **quiet)
    content = openbox = None
    try:
        wait_until(lambda: subprocess.run(["xdpyinfo", "-display", display], capture_output=True).returncode == 0,
                   20, "Xvfb")
        content = subprocess.Popen([str(REPO / "scripts" / "start-content.sh")], env=env, **quiet)
        time.sleep(2.0)
        assert content.poll() is None, "start-content.sh exited without a window manager"
        assert green_pixels(display, tmp_path, size) == 0, "the xterm started before any window manager"
        openbox = subprocess.Popen(["openbox"], env=dict(env, DISPLAY=display), **quiet)
        try:
            wait_until(lambda: green_pixels(display, tmp_path, size) > 200, 20, "green text once openbox runs")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{window_tree(display)}") from None
    finally:
        for process in (content, openbox, xvfb, terminal):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(10)


def test_environment_is_complete_and_prefixed(process_tree: TreeRun) -> None:
    env = process_tree.env
    for name in ("APPLIANCE_CONFIG", "APPLIANCE_DISPLAY", "APPLIANCE_STATE_DIR", "APPLIANCE_RUNTIME_DIR",
                 "APPLIANCE_WIDTH", "APPLIANCE_HEIGHT", "APPLIANCE_SINK", "APPLIANCE_SAMPLE_RATE",
                 "APPLIANCE_PULSE_SOCKET", "APPLIANCE_HOME", "APPLIANCE_CONTROLLER"):
        assert env.get(name), name
    assert env["PULSE_SERVER"] == f"unix:{env['APPLIANCE_PULSE_SOCKET']}"
    assert env["DISPLAY"] == env["APPLIANCE_DISPLAY"]
    assert Path(env["APPLIANCE_RUNTIME_DIR"]).stat().st_mode & 0o077 == 0
    assert content_geometry(1280, 720, 12) == "106x31+0+0"  # fits 1280x720 (the reference's 160x45 does not)


def test_the_display_admits_only_holders_of_the_trees_cookie(process_tree: TreeRun) -> None:
    """Xvfb ran with -ac: any local user could read or draw the live display. Now it loads a
    fresh cookie from a mode-600 file in the private runtime dir; every X client of the tree has
    XAUTHORITY pointing there, and a client without the cookie is refused."""
    def opens(env: dict[str, str]) -> bool:
        return subprocess.run(["xdpyinfo", "-display", process_tree.display], capture_output=True,
                              timeout=10, env=env).returncode == 0

    cookie = Path(process_tree.env["XAUTHORITY"])
    assert cookie.parent == process_tree.tree.runtime_dir and cookie.stat().st_mode & 0o777 == 0o600
    assert opens(process_tree.x_env())
    assert not opens(dict(os.environ, DISPLAY=process_tree.display, XAUTHORITY="/nonexistent"))
    assert not opens(dict(os.environ, DISPLAY=process_tree.display, XAUTHORITY=str(cookie) + ".none"))
    pids = process_tree.tree.wait_running()
    xvfb = [pid for pid in descendants(pids["xvfb"]) | {pids["xvfb"]} if process_name(pid) == "Xvfb"]
    assert xvfb and b"-ac" not in Path(f"/proc/{xvfb[0]}/cmdline").read_bytes().split(b"\0")
    for program in ("openbox", "content", "controller"):
        environ = process_environ(pids[program])
        assert f"XAUTHORITY={cookie}".encode() in environ.split(b"\0"), program


def test_no_process_carries_the_token_in_its_environment(process_tree: TreeRun) -> None:
    """The token reaches the controller as a mode-0400 file of the secret store in the private
    runtime dir; neither supervisord nor any program (nor what they start) has it in
    /proc/<pid>/environ."""
    pids = process_tree.tree.wait_running()
    everyone = {process_tree.tree.pid, *descendants(process_tree.tree.pid)}
    assert set(pids.values()) <= everyone
    carriers = [pid for pid in everyone if FAKE_TOKEN.encode() in process_environ(pid)]
    assert not carriers, f"the token is in the environment of {carriers}"
    store = Path(dict(item.split(b"=", 1) for item in process_environ(pids["controller"]).split(b"\0")
                      if b"=" in item)[b"APPLIANCE_SECRETS_DIR"].decode())
    handed = store / "RETAKE_ACCESS_TOKEN"
    assert store.parent == process_tree.tree.runtime_dir and store.stat().st_mode & 0o777 == 0o700
    assert handed.stat().st_mode & 0o777 == 0o400 and handed.read_text().strip() == FAKE_TOKEN
    assert FAKE_TOKEN not in process_tree.log.read_text(errors="replace")


# -- (b) ------------------------------------------------------------------------------------

@pytest.mark.parametrize("program", ["xvfb", "pulseaudio", "content"])
def test_killed_helper_comes_back(process_tree: TreeRun, program: str) -> None:
    tree = process_tree.tree
    before = tree.wait_running(timeout=RESTART_BOUND_S)
    os.kill(before[program], signal.SIGKILL)
    started = time.monotonic()

    def back() -> bool:
        info = tree.processes()[program]
        return info["statename"] == "RUNNING" and info["pid"] not in (0, before[program])

    wait_until(back, RESTART_BOUND_S, f"{program} to be restarted")
    after = tree.wait_running(timeout=RESTART_BOUND_S)  # the others recover too (xterm dies with X)
    assert after[program] != before[program]
    assert after["controller"] == before["controller"]  # a helper's death never ends the tree
    assert time.monotonic() - started < RESTART_BOUND_S * 2
    # RUNNING means alive for a second, not ready: wait for the sink and the display to answer
    if program == "pulseaudio":
        wait_until(lambda: "treetest" in sinks(process_tree), RESTART_BOUND_S, "the sink to come back")
    if program == "xvfb":
        wait_until(lambda: subprocess.run(["xdpyinfo", "-display", process_tree.display], capture_output=True,
                                          timeout=10, env=process_tree.x_env()).returncode == 0,
                   RESTART_BOUND_S, "the display to answer")


# -- (c) ------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_up_leaves_no_process(signum: int) -> None:
    base = short_tmpdir("apup-")
    try:
        runtime = base / "run"
        display = free_display()
        config = write_config(base / "config", display=display, state_dir=base / "state",
                              width=320, height=240, sink="uptest")
        log = base / "up.log"
        up = start_up_process(config, runtime, STANDIN_CONTROLLER, log)
        env = {"APPLIANCE_HOME": str(Path(__file__).resolve().parents[2]), "APPLIANCE_RUNTIME_DIR": str(runtime)}
        view = ProcessTree(env)  # not started by us: only its XML-RPC view of up's supervisord

        def all_running() -> bool:
            assert up.poll() is None, log.read_text(errors="replace")
            try:
                return all(view.states().get(p) == "RUNNING" for p in PROGRAMS)
            except (OSError, xmlrpc.client.Error):
                return False  # supervisord's socket is not up yet

        wait_until(all_running, 30, "the tree under `appliance up`")
        pids = set(view.pids().values()) | descendants(up.pid)
        recorded = {pid: start_time(pid) for pid in pids}
        assert len(recorded) >= len(PROGRAMS) + 2  # supervisord, listener, programs, tail, ...
        up.send_signal(signum)
        try:
            rc = up.wait(40)
        finally:
            terminate(up, timeout=5)
        assert rc == 0, log.read_text(errors="replace")
        wait_all_ended(recorded, f"still alive after {signal.Signals(signum).name}")
        assert not Path(f"/tmp/.X{display[1:]}-lock").exists()  # Xvfb ended cleanly
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_controller_exit_ends_the_tree_with_its_status() -> None:
    base = short_tmpdir("apexit-")
    try:
        config = write_config(base / "config", display=free_display(), state_dir=base / "state",
                              width=320, height=240, sink="exittest")
        log = base / "up.log"
        up = start_up_process(config, base / "run", ["sh", "-c", "sleep 1; exit 3"], log)
        rc = up.wait(60)
        assert rc == 3, log.read_text(errors="replace")
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- (d) ------------------------------------------------------------------------------------

# Which controller the container runs: "live" is the real `appliance live` against the sandbox
# (go-live sequence, ffmpeg, thumbnail); "standin" pushes FFmpeg straight to the sandbox's ingest
# with a key issued by POST /agent/rtmp, which isolates the image's media stack from the controller.
CONTAINER_CONTROLLERS = ["live", "standin"]
CONTAINER_STOP_BOUND_S = 30.0  # compose's stop_grace_period


def container_config(folder: Path, display: str, base_url: str, agent_name: str) -> Path:
    """A config dir for the container (readable by its uid 10001), pointing at the sandbox."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    extra = (f"retake:\n  base_url: {base_url}\n  sandbox: true\n"
             "control:\n  port: 0\n")
    path = write_config(folder, display=display, state_dir=Path("/state"), width=640, height=360,
                        sample_rate=44100, sink="stream", extra=extra)
    text = path.read_text().replace("name: TreeTest", f"name: {agent_name}")
    path.write_text(text)
    path.chmod(0o644)
    return path


def container_state(folder: Path, agent: SandboxAgent) -> Path:
    """The /state volume with the agent's credentials (mode 600) where a sandbox config looks for
    them (/state/sandbox/credentials.json), owned by the image's uid 10001."""
    path = folder / "sandbox" / "credentials.json"
    save_credentials(path, Credentials(access_token=Secret(agent.access_token), agent_name=agent.name,
                                       agent_id=agent.agent_id, userDbId=agent.user_id,
                                       wallet_address=WALLET, ticker="TREE"))
    for item in (folder, path.parent, path):
        os.chown(item, 10001, 10001)
    return folder


def container_processes(container) -> list[tuple[int, str]]:
    """(uid, command name) of every process in the container, read from /proc inside it."""
    code = ("import os\n"
            "for p in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n"
            "        s = open(f'/proc/{p}/status').read().split('\\n')\n"
            "    except OSError:\n"
            "        continue\n"
            "    d = dict(l.split(':\\t', 1) for l in s if ':\\t' in l)\n"
            "    print(d['Uid'].split()[0], d['Name'])\n")
    result = container.exec_run(["python3", "-c", code])
    assert result.exit_code == 0, result.output
    return [(int(uid), name) for uid, name in (line.split(" ", 1) for line in result.output.decode().splitlines())]


@pytest.mark.container
@pytest.mark.timeout(600)
@pytest.mark.parametrize("controller", CONTAINER_CONTROLLERS)
def test_image_runs_the_tree_and_publishes(docker_client, appliance_image: BuiltImage, rtmp_sandbox,
                                           controller: str) -> None:
    sb = rtmp_sandbox
    agent = register_agent(sb, verified=True)
    display = free_display()
    base = short_tmpdir("apctr-")
    base.chmod(0o755)
    config = container_config(base / "config", display, sb.base_url, agent.name)
    state = container_state(base / "state", agent)
    environment = {"APPLIANCE_WAIT_TIMEOUT": "30"}
    if controller == "standin":
        rtmp = agent.post("agent/rtmp").json()
        environment["APPLIANCE_CONTROLLER"] = shlex.join(
            standin_ffmpeg_controller(f"{rtmp['url']}/{rtmp['key']}", 640, 360))
    mark = len(sb.requests())
    container = docker_client.containers.run(
        appliance_image.image.id, detach=True, network_mode="host", shm_size="64m",
        volumes={str(config.parent): {"bind": "/config", "mode": "ro"}, str(state): {"bind": "/state", "mode": "rw"}},
        environment=environment,
        name=f"appliance-test-{os.getpid()}-{display[1:]}")

    def logs() -> str:
        return container.logs().decode(errors="replace")[-4000:]

    try:
        def published() -> bool:
            container.reload()
            assert container.status == "running", logs()
            accepted = any(e.get("event") == "RTMP publish" and e.get("status") == 200 for e in sb.requests()[mark:])
            return accepted and any(r.get("bytes", 0) > 30_000 for r in sb.recordings())

        t0 = time.monotonic()
        try:
            wait_until(published, 90, "the sandbox's ingest to accept and record a publish", interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- container log ---\n{logs()}") from None
        print(f"\npublished and recorded after {time.monotonic() - t0:.1f} s", file=sys.stderr)
        processes = container_processes(container)
        names = {name for _, name in processes}
        assert {"Xvfb", "pulseaudio", "openbox", "xterm", "tmux: server", "bash", "ffmpeg"} <= names, processes
        # root only where starting as root needs it (docs/security.md): tini, `appliance up` and
        # supervisord, which starts each program as its user; the on-screen shell as the second user
        mine = [(uid, name) for uid, name in processes if name != "python3" or uid != 0] + \
            [(0, "python3")]  # supervisord (this scan, also root's python3, is not counted twice)
        assert sorted(name for uid, name in mine if uid == 0) == ["appliance", "python3", "tini"], processes
        assert {name for uid, name in processes if uid == 10002} <= {"dtach", "bash"}, processes
        assert {uid for uid, _ in processes} == {0, 10001, 10002}, processes
        shm = container.exec_run(["du", "-sk", "/dev/shm"]).output.decode().split()[0]
        print(f"\n/dev/shm in use while streaming: {shm} KiB", file=sys.stderr)
        recording = max((r for r in sb.recordings()), key=lambda r: r.get("bytes", 0))["path"]
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                                "-of", "json", recording], capture_output=True, text=True, timeout=30)
        streams = json.loads(probe.stdout or "{}").get("streams", [])
        assert {"h264", "aac"} <= {s["codec_name"] for s in streams}, probe.stdout + probe.stderr
        assert any((s.get("width"), s.get("height")) == (640, 360) for s in streams), streams
        started = time.monotonic()
        container.stop(timeout=int(CONTAINER_STOP_BOUND_S))
        status = container.wait(timeout=60)["StatusCode"]
        took = time.monotonic() - started
        print(f"container stopped in {took:.1f} s", file=sys.stderr)
        assert took < CONTAINER_STOP_BOUND_S, f"stop took {took:.0f} s"
        assert status == 0, logs()  # a requested stop is a clean exit
        assert agent.access_token not in container.logs().decode(errors="replace")
    finally:
        container.remove(force=True, v=True)
        shutil.rmtree(base, ignore_errors=True)
