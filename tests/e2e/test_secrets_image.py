"""Secrets and users in the image, as users deploy it (issue 17 items 1-3, issue 18 item 3), on
the project's container engine (podman, its Docker-compatible API), against the sandbox and a
fake OpenAI server on this host's loopback:

* compose (``compose.yaml`` as shipped, its ``/state`` changed to a bind-mounted ``./state`` as a
  VPS user does): the field case — ``./state`` owned by root with ``credentials.json`` mode 666
  — goes live; the state is given to uid 10001 and made private; the LLM key from
  ``./secrets/OPENAI_API_KEY`` reaches the model and nowhere else; the attacker's commands
  through the console and MCP show no secret on the pane or in the recording; no process of
  the container and no ``podman inspect`` holds a secret;
* the terminal in the image: a prompt, ``echo`` works as the shell user, and a shell that
  cannot start is retried with back-off (the 82-respawns-in-3-s loop of issue 17.2);
* a state folder that cannot be made private (no CAP_CHOWN) holds, naming the fix;
* ``appliance fleet`` and the rendered Kubernetes manifests deliver the LLM key the same way,
  and the brain answers.
"""

from __future__ import annotations

import json
import os
import re
import secrets as random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.attack import ConsoleTerminal, attack_commands, leaked, mcp_type
from tests.support.chat import FakeOpenAI
from tests.support.data import WALLET
from tests.support.sandbox import NGINX_MISSING, entry_name, register_agent
from tests.support.show import frame_times, ocr, scene_rect
from tests.support.tree import IMAGE_TAG, BuiltImage, appliance_image, docker_client, short_tmpdir, wait_until

__all__ = ["appliance_image", "docker_client"]  # fixtures for pytest
pytestmark = [pytest.mark.container, pytest.mark.timeout(900),
              pytest.mark.skipif(NGINX_MISSING is not None, reason=NGINX_MISSING or "")]
REPO = Path(__file__).resolve().parents[2]
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
ANSWER = "A model answered from inside the container."
# every process of a container: pid -> user, name, environment (hex; "" when this user may not
# read it), command line
SCAN = ("import json, os, pwd\nout = {}\n"
        "def read(p, name):\n"
        "    try:\n        return open('/proc/%s/%s' % (p, name), 'rb').read()\n"
        "    except OSError:\n        return None\n"
        "for p in os.listdir('/proc'):\n"
        "    if not p.isdigit(): continue\n"
        "    try:\n        user = pwd.getpwuid(os.stat('/proc/' + p).st_uid).pw_name\n"
        "    except (OSError, KeyError):\n        continue\n"
        "    env, cmd, comm = read(p, 'environ'), read(p, 'cmdline'), read(p, 'comm')\n"
        "    out[p] = [user, (comm or b'').decode().strip(), env.hex() if env is not None else None,\n"
        "              (cmd or b'').replace(b'\\0', b' ').decode()]\n"
        "print(json.dumps(out))")
USERS = ("root", "appliance", "appliance-shell")  # each reads its own processes' environ (no CAP_SYS_PTRACE)


def engine_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETAKE_", "OPENAI_"))}
    env.setdefault("DOCKER_HOST", "unix:///run/podman-docker.sock")
    return env


def podman(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=engine_env(),
                          check=check)


def processes(name: str) -> dict[int, tuple[str, str, bytes, str]]:
    """pid -> (user, comm, environ, cmdline) of every process in container ``name``; each
    environment read by the process's own user (root there has no CAP_SYS_PTRACE)."""
    found: dict[int, tuple[str, str, bytes, str]] = {}
    for user in USERS:
        # root: with every capability (CAP_SYS_PTRACE), for `appliance up`, which is not dumpable
        # once it switched its group for a moment (appliance/up/privileges.py)
        privileged = ["--privileged"] if user == "root" else []
        out = podman("exec", *privileged, "--user", user, name, "python3", "-c", SCAN, check=True).stdout
        for pid, (owner, comm, env, cmd) in json.loads(out).items():
            if owner == user and env is not None:
                found[int(pid)] = (owner, comm, bytes.fromhex(env), cmd)
            elif int(pid) not in found:
                found[int(pid)] = (owner, comm, b"", cmd)
    unread = {pid: cmd for pid, (_, _, env, cmd) in found.items() if not env and cmd and "python3 -c" not in cmd}
    alive = set(podman("exec", name, "ls", "/proc", check=True).stdout.split())
    lasting = {pid: cmd for pid, cmd in unread.items() if str(pid) in alive}  # not a thumbnail's ffmpeg come and gone
    assert not lasting, f"environments not read: {lasting}"
    return found


def no_secret_in(name: str, values: dict[str, str]) -> None:
    """No process of the container has a secret in its environment; `podman inspect` shows none."""
    procs = processes(name)
    leaks = {f"{comm} ({user})": leaked(env, values, window=min(len(v) for v in values.values()))
             for user, comm, env, _ in procs.values()}
    assert not {k: v for k, v in leaks.items() if v}, leaks
    assert not leaked(podman("inspect", name, check=True).stdout, values)


def agent_config(sb: Any, agent: Any, *, llm_url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "agent": {"name": agent.name, "description": "secrets test", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "SEC"},
        "retake": {"base_url": sb.base_url, "sandbox": True, "backoff_s": 0.1, "backoff_max_s": 1},
        "stream": {"width": 640, "height": 360, "min_speed": 0.5},
        "chat": {"responder": "llm", "llm": {"base_url": llm_url, "timeout_s": 6}, "poll_s": 1, "quiet_poll_s": 1},
    }
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return config


def published(sb: Any, agent: Any) -> bool:
    return any(entry_name(r) == "RTMP publish" and r.get("status") == 200 and r.get("agent") == agent.name
               for r in sb.requests())


def the_model_answers(sb: Any, agent: Any, fake: FakeOpenAI, key: str, logs: Any) -> None:
    """A viewer asks; the brain's answer (the fake model's) is in chat; the model got the key."""
    asked = len(fake.requests)

    def chat() -> list[str]:
        got = agent.get("agent/stream/comments", params={"userDbId": agent.user_id, "limit": 50})
        return [str(c.get("text", "")) for c in got.json().get("comments", [])] if got.ok else []
    wait_until(lambda: any(entry_name(r) == "agent/stream/comments" for r in sb.requests()[-50:]), 60,
               "a chat poll")
    sb.post_comment(text=f"hello {agent.name}, what is on screen?", username="askingviewer", user_db_id=agent.user_id)
    try:
        wait_until(lambda: any(ANSWER in text for text in chat()), 60, "the model's answer")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{logs()}") from None
    mine = [r for r in fake.requests[asked:] if agent.name in r["raw"]]
    assert mine and all(r["headers"].get("Authorization") == f"Bearer {key}" for r in mine)
    # and nowhere else: not in what the model was sent besides that header, not in chat, not at the
    # platform, not in the container's log
    others = [{k: v for k, v in r["headers"].items() if k != "Authorization"} for r in mine]
    assert not leaked(f"{others}{[r['raw'] for r in mine]}{chat()}{sb.requests()}{logs()}", {"llm key": key})


@pytest.fixture(scope="module")
def world(docker_client: Any, appliance_image: BuiltImage) -> Iterator[tuple[Any, FakeOpenAI]]:
    if not shutil.which("podman"):
        pytest.skip("the image tests drive podman")
    from appliance.sandbox import Sandbox
    fake = FakeOpenAI(answer=lambda body: ANSWER)
    try:
        with Sandbox(port=0, rtmp=True, viewer_interval=0) as sb:
            yield sb, fake
    finally:
        fake.close()


# -- compose: the field case, the LLM key, the attacker ------------------------------------------

class Compose:
    """compose.yaml as shipped, with /state bind-mounted from ./state (a VPS user's change)."""

    def __init__(self, project: Path, name: str) -> None:
        self.project, self.name = project, name
        self.container = f"{name}-appliance"

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        pytest.importorskip("podman_compose", reason="podman-compose (PyPI) drives the compose test")
        return subprocess.run([sys.executable, "-m", "podman_compose", "-p", self.name, *args], cwd=self.project,
                              env=dict(engine_env(), APPLIANCE_IMAGE=IMAGE_TAG, APPLIANCE_NETWORK_MODE="host",
                                       APPLIANCE_CONTAINER=self.container), capture_output=True, text=True,
                              timeout=timeout)

    def logs(self) -> str:
        return podman("logs", self.container).stdout[-5000:] + podman("logs", self.container).stderr[-3000:]

    def cli(self, *args: str) -> str:
        out = podman("exec", self.container, "appliance", *args, "--config", "/config/appliance.yaml", timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout


@pytest.fixture(scope="module")
def compose(world: tuple[Any, FakeOpenAI]) -> Iterator[tuple[Compose, dict[str, str], Any]]:
    sb, fake = world
    agent = register_agent(sb, verified=True)
    project = short_tmpdir("apsec-")
    # the VPS user's edit: /state on a folder of the host (and, in .env, the host's network: the
    # sandbox and the fake model listen on this host's loopback; a sandbox must be loopback)
    shipped = (REPO / "compose.yaml").read_text()
    assert "appliance-state:/state" in shipped
    (project / "compose.yaml").write_text(shipped.replace("appliance-state:/state", "./state:/state"))
    shutil.copytree(REPO / "overlays", project / "overlays")
    for folder in ("config", "state", "secrets"):
        (project / folder).mkdir()
    values = {"access token": agent.access_token, "llm key": "sk-compose-" + random.token_hex(16)}
    # a sandbox config keeps its credentials apart (/state/sandbox/); the field case's file is the real one's
    config = agent_config(sb, agent, llm_url=fake.url, paths={"credentials": "/state/credentials.json"},
                          stream={"width": 1280, "height": 720})  # the panel's text large enough for OCR
    (project / "config" / "appliance.yaml").write_text(yaml.safe_dump(config))
    # the field case: ./state owned by root, credentials.json written by the host CLI, mode 666
    creds = project / "state" / "credentials.json"
    creds.write_text(json.dumps({"access_token": agent.access_token, "agent_name": agent.name,
                                 "agent_id": agent.agent_id, "userDbId": agent.user_id,
                                 "wallet_address": WALLET, "ticker": "SEC"}))
    creds.chmod(0o666)
    (project / "secrets" / "OPENAI_API_KEY").write_text(values["llm key"] + "\n")  # mode 644, as people write it
    subprocess.run(["chmod", "-R", "a+rX", str(project / "config"), str(project / "overlays")], check=True)
    (project / "state").chmod(0o755)
    c = Compose(project, f"apsec{os.getpid()}")
    try:
        up = c.run("up", "-d", "appliance")
        assert up.returncode == 0, up.stdout + up.stderr
        try:
            wait_until(lambda: published(sb, agent), 150, "the compose appliance to publish", interval=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{c.logs()}") from None
        yield c, values, agent
    finally:
        c.run("down", "-t", "10")
        shutil.rmtree(project, ignore_errors=True)


def test_compose_the_field_case_goes_live_and_the_state_becomes_the_appliances_alone(compose: Any) -> None:
    c = compose[0]
    state = c.project / "state"
    assert (state.stat().st_uid, state.stat().st_mode & 0o777) == (10001, 0o700)
    creds = state / "credentials.json"
    assert (creds.stat().st_uid, creds.stat().st_mode & 0o777) == (10001, 0o600)
    assert (c.project / "secrets").stat().st_mode & 0o777 == 0o700  # only root may enter the mount
    procs = list(processes(c.container).values())

    def user_of(needle: str) -> set[str]:
        return {user for user, _, _, cmd in procs if needle in cmd}
    assert user_of("tini --") == user_of("supervisor.supervisord") == {"root"}  # root only to start programs
    for program in ("Xvfb", "ffmpeg", "pulseaudio", "tmux -u -S", "dtach -a", "appliance live"):
        assert user_of(program) == {"appliance"}, (program, user_of(program))
    assert user_of("dtach -N") == user_of("shell-loop.sh") == {"appliance-shell"}
    shells = {cmd for user, _, _, cmd in procs if user == "appliance-shell" and "python3 -c" not in cmd}  # not our scan
    assert all("dtach -N" in cmd or "shell-loop.sh" in cmd or cmd.startswith("/bin/bash") for cmd in shells), shells


def test_compose_the_llm_key_reaches_the_model_and_no_process(compose: Any, world: Any) -> None:
    c, values, agent = compose
    sb, fake = world
    the_model_answers(sb, agent, fake, values["llm key"], c.logs)
    control = json.loads(podman("exec", c.container, "cat", "/state/control.json", check=True).stdout)
    no_secret_in(c.container, {**values, "control bearer": control["token"]})
    assert not leaked(c.logs(), values)


def test_compose_the_attackers_commands_show_no_secret_on_the_pane_or_the_stream(compose: Any, world: Any) -> None:
    from mcp import StdioServerParameters
    c, values, agent = compose
    sb, _ = world
    control = json.loads(podman("exec", c.container, "cat", "/state/control.json", check=True).stdout)
    values = {**values, "control bearer": control["token"]}
    controller = next(pid for pid, (_, _, _, cmd) in processes(c.container).items() if "appliance live" in cmd)
    commands = attack_commands(state="/state", controller_pid=controller)
    login = c.cli("console")
    path = re.search(r"/console/login\?ticket=\S+", login).group(0)
    console = ConsoleTerminal(control["url"], path)  # the container shares the host's loopback (compose here)
    console.type("echo hello-$((6*7))")  # the shell in the image: a prompt, and it answers

    def answered() -> str:
        screen = console.read()
        return screen if "hello-42" in screen.splitlines() and screen.rstrip().endswith("$") else ""
    wait_until(answered, 10, "the shell to answer")
    screens = []
    for command in commands:
        console.type(command)
        time.sleep(0.8)
        screens.append(console.read())
    params = StdioServerParameters(command="podman", args=["exec", "-i", c.container, "appliance", "mcp", "--config",
                                                           "/config/appliance.yaml"], env=engine_env())
    screens += mcp_type(params, [*commands, "id -un"])
    text = "\n".join(screens)
    assert "appliance-shell" in screens[-1], screens[-1]
    assert text.count("Permission denied") >= 8, text[-3000:]
    assert not leaked(text, values), leaked(text, values)
    # the recording: a probe line is read back by OCR (so the check can fail), no secret is
    probe = f"PROBE{random.token_hex(3).upper()}"
    console.type(f"echo {probe} {probe}")
    mark = time.time()
    time.sleep(4)
    stopped = c.run("stop", "-t", "30")
    assert stopped.returncode == 0, stopped.stderr
    wait_until(lambda: [r for r in sb.recordings() if r.get("agent") == agent.name and r.get("complete")], 30,
               "the recording closed")
    records = [r for r in sb.recordings() if r.get("agent") == agent.name]
    recording = Path(records[-1]["path"])
    start = os.stat(recording).st_mtime - frame_times(recording)[-1]  # wall time of the recording's t=0
    shown = mark - start
    texts = [ocr(recording, min(at, frame_times(recording)[-1] - 0.2), scene_rect("content"))
             for at in (shown + 1.5, shown + 3.0)]
    joined = " ".join(texts)
    assert probe[:8] in joined.replace(" ", ""), joined
    assert not leaked(joined, values, window=10), joined


# -- the terminal in the image ------------------------------------------------------------------

def run_container(name: str, config: dict[str, Any], base: Path, *, secrets: dict[str, str] | None = None,
                  caps: list[str] = CAPABILITIES) -> None:
    """`podman run` with compose.yaml's hardening and the host's network (the sandbox is on its
    loopback); ``base/state`` is the state, ``base/secrets`` mounted at /run/secrets."""
    for folder in ("config", "state", "secrets"):
        (base / folder).mkdir(exist_ok=True)
    (base / "config" / "appliance.yaml").write_text(yaml.safe_dump(config))
    (base / "config" / "appliance.yaml").chmod(0o644)
    (base / "config").chmod(0o755)
    for key, value in (secrets or {}).items():
        (base / "secrets" / key).write_text(value)
    podman("rm", "-f", name)
    started = podman("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs",
                     "/tmp:rw,nosuid,nodev,size=256m", "--cap-drop", "ALL",
                     *[a for c in caps for a in ("--cap-add", c)],
                     "--security-opt", "no-new-privileges", "-v", f"{base}/config:/config:ro",
                     "-v", f"{base}/state:/state", "-v", f"{base}/secrets:/run/secrets", IMAGE_TAG)
    assert started.returncode == 0, started.stderr


def test_the_terminal_in_the_image_answers_and_a_shell_that_cannot_start_backs_off(world: Any) -> None:
    sb, fake = world
    agent = register_agent(sb, verified=True)
    base = short_tmpdir("apterm-")
    name = f"apterm{os.getpid()}"
    try:
        run_container(name, agent_config(sb, agent, llm_url=fake.url, terminal={"shell": "/usr/sbin/nologin"}),
                      base, secrets={"RETAKE_ACCESS_TOKEN": agent.access_token})
        wait_until(lambda: published(sb, agent), 120, "the container to publish", interval=2)

        def screen() -> str:
            return podman("exec", name, "appliance", "terminal", "--config", "/config/appliance.yaml", "--lines",
                          "200").stdout
        wait_until(lambda: "keeps ending at once" in screen(), 30, "the reason on the pane")
        time.sleep(10)
        text = screen()
        starts = text.count("This account is currently not available")
        assert 2 <= starts <= 7, text  # not 82 in 3 s (issue 17.2)
        assert "is terminal.shell a shell?" in text
    finally:
        podman("rm", "-f", "-t", "5", name)
        shutil.rmtree(base, ignore_errors=True)


def test_a_state_folder_that_cannot_be_made_private_holds_and_names_the_fix(world: Any) -> None:
    """No CAP_CHOWN: /state (owned by root on the host) cannot be given to uid 10001. The
    appliance holds — alive, not ready, its /status naming the fix — instead of a traceback."""
    sb, fake = world
    agent = register_agent(sb, verified=True)
    base = short_tmpdir("aphold-")
    name = f"aphold{os.getpid()}"
    try:
        run_container(name, agent_config(sb, agent, llm_url=fake.url), base,
                      secrets={"RETAKE_ACCESS_TOKEN": agent.access_token},
                      caps=[c for c in CAPABILITIES if c != "CHOWN"])
        def held() -> str:
            out = podman("exec", name, "appliance", "probe", "ready")
            return out.stdout if out.returncode == 1 and "held" in out.stdout else ""
        why = wait_until(held, 60, "the appliance to hold")
        assert "paths.state_dir" in why and "chown -R 10001:10001" in why, why
        assert podman("exec", name, "appliance", "probe", "health").returncode == 0
        logs = podman("logs", name).stdout + podman("logs", name).stderr
        assert "Traceback" not in logs and not published(sb, agent)
    finally:
        podman("rm", "-f", "-t", "5", name)
        shutil.rmtree(base, ignore_errors=True)


# -- the LLM key in `appliance fleet` and in the rendered Kubernetes manifests ------------------

def test_fleet_delivers_the_llm_key_as_a_file_and_the_brain_answers(docker_client: Any, world: Any) -> None:
    from appliance.config import load_config
    from appliance.fleet.agents import load_fleet
    from appliance.fleet.docker import DockerFleet
    sb, fake = world
    agent = register_agent(sb, verified=True)
    folder = short_tmpdir("apfleetkey-")
    folder.chmod(0o755)
    key = "sk-fleet-" + random.token_hex(16)
    config = folder / f"{agent.name}.yaml"
    config.write_text(yaml.safe_dump({**agent_config(sb, agent, llm_url=fake.url), "deploy": {"image": IMAGE_TAG}}))
    config.chmod(0o644)
    env = folder / f"{agent.name}.env"
    env.write_text(f"RETAKE_ACCESS_TOKEN={agent.access_token}\nOPENAI_API_KEY={key}\n")
    env.chmod(0o600)
    fleet = DockerFleet(docker_client, fleet=f"key{os.getpid()}", out=lambda line: None)
    try:
        fleet.up(load_fleet(folder, load_config))
        wait_until(lambda: published(sb, agent), 120, "the fleet agent to publish", interval=2)
        the_model_answers(sb, agent, fake, key, lambda: fleet.logs(agent.name, tail=60))
        no_secret_in(agent.name, {"llm key": key, "access token": agent.access_token})
    finally:
        fleet.down()
        podman("volume", "rm", "-f", f"{agent.name}-state")
        shutil.rmtree(folder, ignore_errors=True)
    assert not (folder / ".secrets" / agent.name).exists()


def test_the_rendered_kubernetes_manifest_delivers_the_llm_key_and_the_brain_answers(world: Any,
                                                                                    tmp_path: Path) -> None:
    """No cluster runs here: the StatefulSet's container is run as a kubelet would — its args,
    its securityContext (user, capabilities, read-only root, no privilege escalation), the
    ConfigMap and the Secret mounted where the manifest says (the Secret's keys as files, mode
    0400), emptyDirs as tmpfs — and its brain must answer with the key from the Secret."""
    from appliance.config import load_config
    from appliance.fleet.agents import load_fleet
    from appliance.fleet.kubernetes import k8s_name, render
    sb, fake = world
    agent = register_agent(sb, verified=True)
    fleet = short_tmpdir("apk8s-")
    (fleet / f"{agent.name}.yaml").write_text(yaml.safe_dump(agent_config(sb, agent, llm_url=fake.url)))
    out = tmp_path / "k8s"
    render(load_fleet(fleet, load_config), out, image=IMAGE_TAG)
    sts = yaml.safe_load((out / "base" / "statefulset.yaml").read_text())
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    overlay = yaml.safe_load((out / "agents" / k8s_name(agent.name) / "kustomization.yaml").read_text())
    assert overlay["configMapGenerator"][0]["files"] == ["appliance.yaml"]
    key = "sk-k8s-" + random.token_hex(16)
    secret = tmp_path / "secret"  # what `kubectl create secret generic ... --from-literal=KEY=...` mounts
    secret.mkdir(mode=0o755)
    default_mode = next(v["secret"]["defaultMode"] for v in pod["volumes"] if v["name"] == "secrets")
    for name, value in {"RETAKE_ACCESS_TOKEN": agent.access_token, "OPENAI_API_KEY": key}.items():
        (secret / name).write_text(value)
        (secret / name).chmod(default_mode)
    configmap = out / "agents" / k8s_name(agent.name)
    (configmap / "appliance.yaml").chmod(0o644)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    sc, pod_sc = container["securityContext"], pod["securityContext"]
    name = f"apk8s{os.getpid()}"
    args = ["run", "-d", "--name", name, "--network", "host", "--user", f"{pod_sc['runAsUser']}:{pod_sc['runAsGroup']}",
            "--cap-drop", "ALL", *[a for c in sc["capabilities"]["add"] for a in ("--cap-add", c)],
            *(["--read-only"] if sc["readOnlyRootFilesystem"] else []),
            *(["--security-opt", "no-new-privileges"] if sc["allowPrivilegeEscalation"] is False else []),
            "-v", f"{configmap}:{mounts['config']['mountPath']}:ro",
            "-v", f"{secret}:{mounts['secrets']['mountPath']}:ro",
            "--tmpfs", f"{mounts['tmp']['mountPath']}:rw,size=256m",
            "-v", f"{name}-state:{mounts['state']['mountPath']}",
            *[a for e in container.get("env", []) for a in ("-e", f"{e['name']}={e['value']}")],
            IMAGE_TAG, *container["args"]]
    try:
        podman("rm", "-f", name)
        started = podman(*args)
        assert started.returncode == 0, started.stderr
        try:
            wait_until(lambda: published(sb, agent), 120, "the pod's container to publish", interval=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{args}\n{podman('logs', name).stdout[-4000:]}") from None
        the_model_answers(sb, agent, fake, key, lambda: podman("logs", name).stdout[-4000:])
        no_secret_in(name, {"llm key": key, "access token": agent.access_token})
    finally:
        podman("rm", "-f", "-t", "5", name)
        podman("volume", "rm", "-f", f"{name}-state")
        shutil.rmtree(fleet, ignore_errors=True)
