"""Deploy without a container engine: placement on a shared host (display, control port),
holding instead of restart-looping, the packaged process tree, and the Kubernetes manifests
(rendered with `kubectl kustomize`, validated with kubernetes-validate). The pure parts
(state volume, init, fleet with a fake Docker) are in tests/unit/."""

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
from appliance.core.errors import ConfigError
from appliance.core.files import StateLayout
from appliance.up.place import (
    choose_control_port,
    choose_display,
    place,
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
