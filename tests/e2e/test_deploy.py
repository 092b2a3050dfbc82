"""Deploy without a container engine: placement on a shared host (display, control port, state
volume), holding instead of restart-looping, `appliance init`, the packaged process tree, and
the Kubernetes manifests (rendered with `kubectl kustomize`, validated with kubernetes-validate)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from appliance.config import load_config, parse_config
from appliance.core.errors import ConfigError, InputError
from appliance.core.files import StateLayout
from appliance.init import check_answer, render, run_init
from appliance.up.place import (
    check_state_on_volume,
    choose_control_port,
    choose_display,
    place,
    volume_of,
)
from tests.support.tree import (
    STANDIN_CONTROLLER,
    free_display,
    short_tmpdir,
    start_up_process,
    terminate,
    wait_until,
    write_config,
)

REPO = Path(__file__).resolve().parents[2]
AGENT = {"name": "DeployTest", "description": "d", "image_url": "https://example.com/a.png",
         "wallet_address": "11111111111111111111111111111111", "ticker": "DEP"}


def settings_with(tmp_path: Path, **sections) -> object:
    return parse_config({"agent": AGENT, "paths": {"state_dir": str(tmp_path / "state")}, **sections}, "t.yaml")


# -- placement: display and control port -------------------------------------------------------

def test_unpinned_display_and_port_are_chosen_free_and_written_for_the_controller(tmp_path):
    settings = settings_with(tmp_path, overlay={"watch_dir": "relative-overlays"})
    assert settings.stream.display == "auto" and settings.control.port == 0  # the defaults are unpinned
    runtime = tmp_path / "run"
    path, placed = place(settings, runtime_dir=runtime)
    assert placed.stream.display.startswith(":") and placed.control.port > 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = load_config(path)  # the controller reads this copy: every value concrete, paths absolute
    assert again.stream.display == placed.stream.display and again.control.port == placed.control.port
    assert Path(again.overlay.watch_dir).is_absolute()


def test_a_pinned_display_or_port_that_is_taken_names_its_key(tmp_path):
    number = int(free_display()[1:])
    lock = Path(f"/tmp/.X{number}-lock")
    lock.write_text(f"{os.getpid():>10}\n")
    try:
        with pytest.raises(ConfigError, match=rf"stream\.display: :{number} is taken"):
            choose_display(f":{number}")
    finally:
        lock.unlink()
    assert choose_display(f":{number}") == f":{number}"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"control\.port: {port} on 127\.0\.0\.1 is taken"):
            choose_control_port(port)


MOUNTINFO = """\
1 0 0:50 / / rw,relatime - overlay overlay rw
2 1 0:51 / /proc rw - proc proc rw
3 1 8:1 /volumes/state/_data /state rw,relatime - ext4 /dev/sda1 rw
4 1 8:1 /host/config /config ro,relatime - ext4 /dev/sda1 rw
5 1 0:60 / /tmp/with\\040space rw - tmpfs tmpfs rw
"""


def test_in_a_container_the_state_must_be_on_a_volume(tmp_path):
    assert volume_of(Path("/state/sandbox"), MOUNTINFO) == "/state"
    assert volume_of(Path("/tmp/with space/x"), MOUNTINFO) == "/tmp/with space"
    assert volume_of(Path("/home/appliance/.local/state/retake-appliance"), MOUNTINFO) == "/"
    inside = parse_config({"agent": AGENT, "paths": {"state_dir": "/home/appliance/.local/state/x"}}, "t")
    with pytest.raises(ConfigError, match=r"paths\.state_dir: .* not on a volume") as info:
        check_state_on_volume(inside, in_container=True, mountinfo=MOUNTINFO)
    assert "remove paths.state_dir" in str(info.value)
    on_volume = parse_config({"agent": AGENT, "paths": {"state_dir": "/state"}}, "t")
    check_state_on_volume(on_volume, in_container=True, mountinfo=MOUNTINFO)
    check_state_on_volume(inside, in_container=False, mountinfo=MOUNTINFO)  # a bare host: anywhere


# -- holding instead of a restart loop --------------------------------------------------------

def probe(kind: str, state: Path) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "appliance", "probe", kind, "--state", str(state)],
                         capture_output=True, text=True, timeout=30)
    return out.returncode, json.loads(out.stdout or "{}")


@pytest.mark.timeout(120)
def test_up_holds_on_a_bad_config_and_starts_once_it_is_fixed():
    """In a container (here: APPLIANCE_HOLD_ON_ERROR=1) a bad config does not exit (which a restart
    policy would loop): `up` stays alive and unready, says what is wrong on /health and /ready,
    and starts the tree by itself once the file is fixed."""
    base = short_tmpdir("aphold-")
    state = base / "state"
    try:
        config = write_config(base / "config", display="auto", state_dir=state, width=320, height=240,
                              sink="holdtest")
        good = config.read_text()
        config.write_text(good.replace("ticker: TREE", "ticker: WAYTOOLONGTICKER"))
        log = base / "up.log"
        os.environ["APPLIANCE_HOLD_ON_ERROR"] = "1"
        try:
            up = start_up_process(config, base / "run", STANDIN_CONTROLLER, log)
        finally:
            del os.environ["APPLIANCE_HOLD_ON_ERROR"]
        try:
            wait_until(lambda: StateLayout(state).control_json.exists(), 30, "the held appliance's control.json")
            assert probe("health", state)[0] == 0, log.read_text()
            code, body = probe("ready", state)
            assert code == 1 and "agent.ticker: at most 10 characters" in body["reason"], body
            time.sleep(2)
            assert up.poll() is None, log.read_text()  # still up: nothing for a restart policy to loop
            config.write_text(good)
            # the whole tree, up to the (stand-in) controller, once the file is fixed
            wait_until(lambda: b"stand-in controller up" in log.read_bytes(), 60, "the tree to start after the fix")
            info = json.loads(StateLayout(state).control_json.read_text())
            assert info["display"].startswith(":") and not info["held"], info
        finally:
            assert terminate(up) == 0, log.read_text()
        assert not StateLayout(state).control_json.exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(60)
def test_without_holding_a_bad_config_exits_2_naming_the_key(tmp_path):
    config = write_config(tmp_path, display="auto", state_dir=tmp_path / "state")
    config.write_text(config.read_text().replace("ticker: TREE", "ticker: WAYTOOLONGTICKER"))
    out = subprocess.run([sys.executable, "-m", "appliance", "up", "--config", str(config)],
                         capture_output=True, text=True, timeout=30, env=dict(os.environ, APPLIANCE_HOLD_ON_ERROR="0"))
    assert out.returncode == 2 and "agent.ticker: at most 10 characters" in out.stderr, out


@pytest.mark.timeout(180)
def test_two_unpinned_appliances_share_one_host_and_a_taken_pin_stops_before_anything_starts():
    base = short_tmpdir("aptwo-")
    ups = []
    try:
        for i in range(2):
            config = write_config(base / f"c{i}", display="auto", state_dir=base / f"s{i}", width=320, height=240,
                                  sink=f"two{i}")
            ups.append(start_up_process(config, base / f"run{i}", STANDIN_CONTROLLER, base / f"up{i}.log"))
        infos = []
        for i in range(len(ups)):
            tree = StateLayout(base / f"s{i}").control_json
            wait_until(tree.exists, 30, f"appliance {i}'s control.json")
            infos.append(json.loads(tree.read_text()))
        assert infos[0]["display"] != infos[1]["display"], infos
        assert infos[0]["url"] != infos[1]["url"], infos
        for i in range(2):  # both trees run (today's defaults would kill the second's openbox)
            wait_until(lambda i=i: b"openbox entered RUNNING" in (base / f"up{i}.log").read_bytes()
                       and b"content entered RUNNING" in (base / f"up{i}.log").read_bytes(), 60,
                       f"tree {i}'s openbox and content window")
            assert ups[i].poll() is None, (base / f"up{i}.log").read_text()
        # a pinned display that the first appliance holds: a clear error, nothing started
        pinned = write_config(base / "c2", display=infos[0]["display"], state_dir=base / "s2", sink="two2")
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "appliance.up", "--config", str(pinned), "--", "true"],
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, APPLIANCE_HOLD_ON_ERROR="0",
                                      APPLIANCE_RUNTIME_DIR=str(base / "run2")))
        assert out.returncode == 2, out
        assert f"stream.display: {infos[0]['display']} is taken" in out.stderr, out.stderr
        assert not (base / "run2" / "supervisor.sock").exists() and time.monotonic() - started < 30
    finally:
        for up in ups:
            terminate(up)
        shutil.rmtree(base, ignore_errors=True)


# -- appliance init ---------------------------------------------------------------------------

def test_init_checks_each_answer_as_register_would_and_writes_a_loadable_file(tmp_path):
    assert check_answer("ticker", "ELEVENCHARS") == "at most 10 characters"
    assert check_answer("name", "has space") and check_answer("image_url", "http://x/a.png")
    assert "base58" in check_answer("wallet_address", "0OIl")
    assert check_answer("name", "Good_Agent-1") is None
    answers = iter(["bad name!", "Good_Agent-1", "Builds tools \"live\"", "http://insecure/a.png",
                    "https://example.com/a.png", "0OIl", "11111111111111111111111111111111", "ELEVENCHARS", "GOOD"])
    asked = []
    path = tmp_path / "appliance.yaml"
    assert run_init(path, answers={}, read=lambda q: asked.append(q) or next(answers)) == 0
    settings = load_config(path)
    assert settings.agent.name == "Good_Agent-1" and settings.agent.description == 'Builds tools "live"'
    assert settings.agent.ticker == "GOOD" and len(asked) == 9  # every bad answer asked again
    text = path.read_text()
    assert "# retake.tv broadcast appliance" in text and "max_restarts_per_hour" in text  # the example's comments
    with pytest.raises(ConfigError, match="already exists"):
        run_init(path, answers={}, read=lambda q: "")
    with pytest.raises(InputError, match="--ticker: "):
        run_init(tmp_path / "b.yaml", answers={"name": "A", "description": "d", "image_url": "https://e.com/a.png",
                                               "wallet": "11111111111111111111111111111111", "ticker": "!!"})


def test_init_render_keeps_comments_and_quotes_values():
    template = (REPO / "config.example.yaml").read_text()
    out = render(template, {"name": "X", "description": "a: b # not a comment", "image_url": "https://e.com/a.png",
                            "wallet_address": "11111111111111111111111111111111", "ticker": "T"})
    data = yaml.safe_load(out)
    assert data["agent"]["description"] == "a: b # not a comment"
    assert out.count("\n") == template.count("\n")


# -- the packaged process tree ------------------------------------------------------------------

def test_the_wheel_build_takes_every_file_of_the_tree_folders_new_ones_too(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("appliance_setup", REPO / "setup.py")
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    files = {str(p) for p in setup.tree_files()}
    tracked = subprocess.run(["git", "ls-files", "supervisord.conf", "conf.d", "scripts", "overlays"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    tools = {"scripts/setup.sh", "scripts/test.sh", "scripts/go.sh"}
    assert set(tracked) - tools <= files, set(tracked) - tools - files
    assert not files & tools and "config.example.yaml" in files
    copy = tmp_path / "tree"
    copy.mkdir()
    for name in ("supervisord.conf", "conf.d", "scripts", "overlays", "config.example.yaml"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, copy / name)
    (copy / "conf.d" / "scene.conf").write_text("[program:scene]\n")
    (copy / "overlays" / "scenes").mkdir()
    (copy / "overlays" / "scenes" / "intro.yaml").write_text("x: 1\n")
    found = {str(p) for p in setup.tree_files(copy)}
    assert {"conf.d/scene.conf", "overlays/scenes/intro.yaml"} <= found


# -- Kubernetes -------------------------------------------------------------------------------

# what the Pod Security Standards' "baseline" profile lets a container add
# (kubernetes.io/docs/concepts/security/pod-security-standards)
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def kustomize(folder: Path) -> list[dict]:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl not installed (Debian: kubectl)")
    out = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_kubernetes_render_is_committed_renders_and_validates(tmp_path):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    from appliance.fleet.agents import load_fleet
    from appliance.fleet.kubernetes import render
    out = tmp_path / "k8s"
    files = render(load_fleet(REPO / "deploy" / "fleet", load_config), out)
    for path in files:  # deploy/ is this render, committed: no drift
        committed = REPO / "deploy" / path.relative_to(out)
        assert committed.read_text() == path.read_text(), f"{committed} differs from the render: re-run it"
    docs = kustomize(out)
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert [k for k, _ in kinds] == ["ConfigMap", "ConfigMap", "Service", "Service", "StatefulSet", "StatefulSet"]
    sets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    assert set(sets) == {"retake-appliance-alice", "retake-appliance-bob"}
    for name, sts in sets.items():
        agent = name.rsplit("-", 1)[1]
        pod = sts["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert sts["spec"]["replicas"] == 1 and sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        # root at the start only (it gives the PVC to uid 10001, reads the Secret, starts each
        # program as its user), with the six capabilities that needs: all within Pod Security "baseline"
        assert pod["securityContext"]["runAsUser"] == 0 and "fsGroup" not in pod["securityContext"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
        assert set(sc["capabilities"]["add"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"}
        assert set(sc["capabilities"]["add"]) <= BASELINE_CAPABILITIES
        assert sc["allowPrivilegeEscalation"] is False
        assert "env" not in container  # no secret, nor the name of one, in the environment
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/dev/shm", "/state", "/config"} <= mounts  # writable places with a read-only root
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[kind]["exec"]["command"][:2] == ["appliance", "probe"]
        assert "8787" not in yaml.safe_dump(sts)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == f"retake-appliance-secrets-{agent}"
        assert volumes["secrets"]["secret"]["optional"] is True and volumes["secrets"]["secret"]["defaultMode"] == 0o400
        assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in container["volumeMounts"]
        assert volumes["config"]["configMap"]["name"].startswith(f"retake-appliance-config-{agent}-")
        assert sts["spec"]["selector"]["matchLabels"]["retake.tv/agent"] == agent
    bob = sets["retake-appliance-bob"]["spec"]["template"]["spec"]["containers"][0]
    assert bob["resources"]["limits"]["memory"] == "1536Mi"
    configs = {d["metadata"]["name"].rsplit("-", 1)[0]: yaml.safe_load(d["data"]["appliance.yaml"])
               for d in docs if d["kind"] == "ConfigMap"}
    assert configs["retake-appliance-config-alice"]["agent"]["name"] == "alice"
    for config in configs.values():  # every config loads as the pod will load it, state on the PVC
        parsed = parse_config(config, "configmap")
        assert "state_dir" not in config.get("paths", {}) and parsed.agent.name in ("alice", "bob")


def test_live_alone_takes_an_auto_display_from_its_environment(tmp_path):
    from appliance.up.place import display_for_live
    settings = settings_with(tmp_path)
    assert display_for_live(settings, {"DISPLAY": ":42"}).stream.display == ":42"
    with pytest.raises(ConfigError, match=r"stream\.display: auto is chosen by `appliance up`"):
        display_for_live(settings, {})
    pinned = settings_with(tmp_path, stream={"display": ":7"})
    assert display_for_live(pinned, {"DISPLAY": ":42"}).stream.display == ":7"


class FakeContainer:
    def __init__(self, client, name, labels, options):
        self.client, self.name, self.labels, self.options = client, name, labels, options
        self.status, self.events = "running", []
        self.attrs = {"State": {"StartedAt": ""}, "RestartCount": 0}

    def exec_run(self, cmd, demux=False):
        return type("Exec", (), {"exit_code": 1, "output": (b"", b"not running")})()

    def reload(self):
        pass

    def stop(self, timeout):
        self.events.append(("stop", timeout))
        self.status = "exited"

    def start(self):
        self.events.append(("start",))
        self.status = "running"

    def remove(self, force=False, v=False):
        self.events.append(("remove", v))
        self.client.gone.append(self)
        self.client.running.pop(self.name)


class FakeImages:
    def get(self, name):
        return type("Image", (), {"id": f"sha256:{name}"})()


class FakeContainers:
    def __init__(self, client):
        self.client = client

    def list(self, all, filters):
        fleet = filters["label"].split("=", 1)[1]
        return [c for c in self.client.running.values() if c.labels.get("tv.retake.fleet") == fleet]

    def run(self, image, detach, labels, **options):
        container = FakeContainer(self.client, options["name"], labels, dict(options, image=image))
        self.client.running[container.name] = container
        return container

    def get(self, name):
        import docker
        if name not in self.client.running:
            raise docker.errors.NotFound(name)
        return self.client.running[name]


class FakeDocker:
    def __init__(self):
        self.running, self.gone = {}, []
        self.images, self.containers = FakeImages(), FakeContainers(self)


def test_fleet_up_is_idempotent_replaces_what_changed_and_prunes_what_is_gone(tmp_path):
    pytest.importorskip("docker")
    from appliance.fleet.agents import load_fleet
    from appliance.fleet.docker import DockerFleet
    for name in ("ann", "ben"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"agent": {**AGENT, "name": name}, "deploy": {"cpus": 0.5, "memory_mb": 700}}))
        path.chmod(0o644)
    (tmp_path / "ann.env").write_text("# the token\nRETAKE_ACCESS_TOKEN='tok-ann'\nOPENAI_API_KEY=sk-ann\n")
    client = FakeDocker()
    fleet = DockerFleet(client, fleet="f", out=lambda line: None)
    assert fleet.up(load_fleet(tmp_path, load_config)) == {"ann": "created", "ben": "created"}
    ann = client.running["ann"]
    # secrets are files mounted read-only at /run/secrets, never environment variables
    assert "environment" not in ann.options and "env" not in ann.options
    secrets = tmp_path / ".secrets" / "ann"
    assert ann.options["volumes"][str(secrets)] == {"bind": "/run/secrets", "mode": "ro"}
    assert {p.name: p.read_text().strip() for p in secrets.iterdir()} == {"RETAKE_ACCESS_TOKEN": "tok-ann",
                                                                          "OPENAI_API_KEY": "sk-ann"}
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    assert oct((secrets / "OPENAI_API_KEY").stat().st_mode & 0o777) == "0o400"
    assert not list((tmp_path / ".secrets" / "ben").iterdir())
    assert ann.options["nano_cpus"] == 500_000_000 and ann.options["mem_limit"] == "700m"
    assert ann.options["read_only"] and ann.options["cap_drop"] == ["ALL"]
    assert ann.options["cap_add"] == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
    assert ann.options["security_opt"] == ["no-new-privileges"]
    assert ann.options["restart_policy"]["Name"] == "on-failure"
    assert ann.options["volumes"]["ann-state"]["bind"] == "/state" and "network_mode" not in ann.options
    assert ann.labels["tv.retake.agent"] == "ann" and ann.labels["tv.retake.fleet"] == "f"
    assert fleet.up(load_fleet(tmp_path, load_config)) == {"ann": "unchanged", "ben": "unchanged"}
    (tmp_path / "ann.env").write_text("RETAKE_ACCESS_TOKEN=tok-new\n")  # a new token: replaced, with an orderly stop
    assert fleet.up(load_fleet(tmp_path, load_config)) == {"ann": "replaced", "ben": "unchanged"}
    assert ann.events[:2] == [("stop", 30), ("remove", True)]
    assert (secrets / "RETAKE_ACCESS_TOKEN").read_text().strip() == "tok-new"
    assert not (secrets / "OPENAI_API_KEY").exists()  # the folder is made anew
    client.running["ben"].status = "exited"
    assert fleet.up(load_fleet(tmp_path, load_config))["ben"] == "started"
    (tmp_path / "ben.yaml").unlink()
    # a gone YAML is left alone without --prune
    assert fleet.up(load_fleet(tmp_path, load_config)) == {"ann": "unchanged"}
    assert fleet.up(load_fleet(tmp_path, load_config), prune=True) == {"ann": "unchanged", "ben": "pruned"}
    assert "ben" not in client.running
    (tmp_path / "ann.yaml").chmod(0o600)
    with pytest.raises(ConfigError, match="not readable by the container's user"):
        fleet.up(load_fleet(tmp_path, load_config))


def test_fleet_gives_each_agent_a_control_port_on_loopback_kept_across_ups(tmp_path):
    """Issue 18 item 4 (fleet): one control port per agent on this host's loopback, listed by
    `fleet status`, the same after `up` again or a replace, and the same number inside (the
    console's session cookie is named after it): on the engine's network the appliance listens
    on the container's interfaces and the engine publishes the port on 127.0.0.1 only; with the
    host's network (a local sandbox) it listens on loopback itself."""
    pytest.importorskip("docker")
    from appliance.fleet.agents import load_fleet
    from appliance.fleet.docker import DockerFleet
    for name, retake in (("ann", {}), ("ben", {"base_url": "http://127.0.0.1:8765", "sandbox": True})):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"agent": {**AGENT, "name": name}, "retake": retake}))
        path.chmod(0o644)
    client = FakeDocker()
    fleet = DockerFleet(client, fleet="f", out=lambda line: None)
    fleet.up(load_fleet(tmp_path, load_config))
    ann, ben = client.running["ann"], client.running["ben"]
    ports = {n: int(c.labels["tv.retake.control"]) for n, c in client.running.items()}
    assert len(set(ports.values())) == 2 and all(p > 0 for p in ports.values())
    assert ann.options["ports"] == {f"{ports['ann']}/tcp": ("127.0.0.1", ports["ann"])}
    assert ann.options["command"][-4:] == ["--control-port", str(ports["ann"]), "--control-listen", "0.0.0.0"]
    assert ben.options["network_mode"] == "host" and "ports" not in ben.options
    assert ben.options["command"][-4:] == ["--control-port", str(ports["ben"]), "--control-listen", "127.0.0.1"]
    assert fleet.up(load_fleet(tmp_path, load_config)) == {"ann": "unchanged", "ben": "unchanged"}
    (tmp_path / "ann.yaml").write_text(yaml.safe_dump({"agent": {**AGENT, "name": "ann", "description": "new"}}))
    assert fleet.up(load_fleet(tmp_path, load_config))["ann"] == "replaced"
    assert client.running["ann"].labels["tv.retake.control"] == str(ports["ann"])  # the operator's URL holds
    rows = {r.agent: r for r in fleet.status(load_fleet(tmp_path, load_config))}
    assert rows["ann"].control == f"127.0.0.1:{ports['ann']}" and rows["ben"].control == f"127.0.0.1:{ports['ben']}"


def test_fleet_status_with_a_bad_yaml_shows_the_others_and_names_the_file(tmp_path, monkeypatch, capsys):
    """Issue 18 item 6: one bad YAML made `fleet status` exit 2 showing nobody."""
    pytest.importorskip("docker")
    import appliance.fleet.cli as fleet_cli
    from appliance.cli import main
    for name in ("ann", "ben"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"agent": {**AGENT, "name": name}}))
        path.chmod(0o644)
    client = FakeDocker()
    monkeypatch.setattr(fleet_cli, "docker_client", lambda **_: client)
    assert main(["fleet", "up", str(tmp_path), "--fleet", "f"]) == 0
    (tmp_path / "ben.yaml").write_text("agent: {name: ben, ticker: [not, a, ticker]}\n")  # broken while running
    (tmp_path / "cat.yml").write_text("agent: [\n")
    capsys.readouterr()
    assert main(["fleet", "status", str(tmp_path), "--fleet", "f"]) == 2
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["agent", "state"]
    assert [line.split()[0] for line in lines[1:]] == ["ann", "ben"]  # ben's container is still shown
    assert f"{tmp_path / 'ben.yaml'}: agent" in err and f"{tmp_path / 'cat.yml'}" in err and "not valid YAML" in err
    with pytest.raises(ConfigError, match=r"ben\.yaml"):  # up starts nothing while a file is bad
        fleet_cli.run_fleet(type("A", (), {"action": "up", "folder": str(tmp_path), "fleet": "f", "image": None,
                                           "names": [], "prune": False})(), load_config)


def test_the_rendered_configmap_keeps_the_brain_it_was_given(tmp_path):
    """A config dumped without its defaults lost chat.brain's engine (a default, yet required):
    the pod held on 'chat.brain.engine: required'. The ConfigMap loads as the agent's YAML does."""
    from appliance.fleet.agents import load_fleet
    from appliance.fleet.kubernetes import k8s_name, render
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "kai.yaml").write_text(yaml.safe_dump({"agent": {**AGENT, "name": "kai"}, "chat": {
        "brain": {"engine": "llm", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "KAI_KEY"}}}))
    render(load_fleet(fleet, load_config), tmp_path / "out")
    rendered = load_config(tmp_path / "out" / "agents" / k8s_name("kai") / "appliance.yaml")
    assert rendered.chat.brain.engine == "llm" and rendered.chat.secret_env_names()[0] == "KAI_KEY"
