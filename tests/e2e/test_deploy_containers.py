"""Deploy on the project's container engine (podman with its Docker-compatible API), with the
image built once per session (``appliance_image``):

* compose: ``--profile sandbox up`` with a copied example config and no token rehearses the
  whole appliance (a real publish, recorded and decoded), while the live service holds
  (alive, unready, saying what to run) instead of restart-looping; the hardening flags hold;
* fleet: two agents from one folder go live against the sandbox at once, each at its first
  start (no restart: they share the host's network, where X's display sockets once collided),
  ``up`` twice changes nothing, ``status`` shows both with their control ports, through which
  the console and MCP work from the host (and a held agent's on the engine's own network),
  ``down`` stops both with stream/stop and leaves no anonymous volume;
* the wheel: installed into a fresh venv outside the checkout, ``appliance up`` publishes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.compose import ComposeProject, compose_available, engine_env
from tests.support.data import WALLET
from tests.support.sandbox import entry_name, register_agent
from tests.support.tree import (
    IMAGE_TAG,
    BuiltImage,
    appliance_image,
    docker_client,
    short_tmpdir,
    terminate,
    wait_until,
)

__all__ = ["appliance_image", "docker_client"]  # fixtures for pytest
REPO = Path(__file__).resolve().parents[2]


def publishers(sb, after: int = 0) -> set[str]:
    """Agents whose RTMP publish the sandbox's ingest accepted (after request ``after``)."""
    return {str(r.get("agent")) for r in sb.requests()[after:]
            if entry_name(r) == "RTMP publish" and r.get("status") == 200}


@pytest.mark.container
@pytest.mark.timeout(420)
def test_compose_sandbox_profile_rehearses_with_zero_edits_and_the_live_service_holds(
        appliance_image: BuiltImage) -> None:
    if why := compose_available():
        pytest.skip(why)
    health = subprocess.run(["podman", "image", "inspect", IMAGE_TAG, "--format", "{{json .HealthCheck}}"],
                            capture_output=True, text=True, env=engine_env(), timeout=30).stdout
    assert '"probe"' in health and "8787" not in health, health  # the port the appliance chose, not a fixed one
    with ComposeProject(IMAGE_TAG, prefix="apcompose") as project:  # the example config, copied, not edited
        rehearsal, live = project.rehearsal, project.live
        project.up()

        def recorded() -> str:
            found = project.exec(rehearsal, "find", "/state/rehearsal/recordings", "-name", "*.flv", "-size", "+30k")
            return found.stdout.strip().splitlines()[0] if found.stdout.strip() else ""
        try:
            flv = wait_until(recorded, 150, "the rehearsal's sandbox to record a publish", interval=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- rehearsal log ---\n{project.logs(rehearsal)[-4000:]}") from None
        probe = project.exec(rehearsal, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json",
                             flv)
        assert {"h264", "aac"} <= {s["codec_name"] for s in json.loads(probe.stdout)["streams"]}, probe
        assert "-> live" in project.logs(rehearsal)
        assert console_through_the_pods_loopback(project) == 200
        # the live service: no token, no credentials -> held (alive, unready), not a restart loop
        health = project.exec(live, "appliance", "probe", "health")
        ready = project.exec(live, "appliance", "probe", "ready")
        assert health.returncode == 0, health.stdout + health.stderr + project.logs(live)[-4000:]
        assert ready.returncode == 1 and "no credentials" in ready.stdout, ready.stdout
        inspect = project.inspect(live)
        assert inspect["State"]["Running"] and inspect.get("RestartCount", 0) == 0
        host = inspect["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        # every capability dropped but what starting as root needs (docs/security.md)
        assert {"CAP_NET_RAW", "CAP_MKNOD", "CAP_SETFCAP", "CAP_SYS_CHROOT"} <= set(host["CapDrop"])
        assert set(inspect["BoundingCaps"]) == {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID",
                                                "CAP_SETGID", "CAP_KILL"}
        assert any("no-new-privileges" in opt for opt in host["SecurityOpt"])
        assert host["LogConfig"]["Type"] in ("json-file", "k8s-file")
        # the entrypoint is `appliance`: `docker compose run --rm appliance register` runs a subcommand
        sub = project.compose("run", "--rm", "appliance", "register", "--help", timeout=120)
        assert sub.returncode == 0 and "Register the agent on retake.tv" in sub.stdout, sub.stdout + sub.stderr
        t0 = time.monotonic()
        stopped = project.compose("stop", "-t", "30", timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert time.monotonic() - t0 < 60
        assert "rehearsal: ended with status 0" in project.logs(rehearsal)


CONSOLE_IN_NETNS = """
import http.cookiejar, json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                     urllib.request.ProxyHandler({}))
opener.open(sys.argv[1], timeout=10)
state = opener.open(sys.argv[1].split("/console/")[0] + "/console/state", timeout=10)
print(state.status, json.dumps(json.load(state)))
"""


def console_through_the_pods_loopback(project: ComposeProject) -> int:
    """The Kubernetes recipe's path (`kubectl port-forward` dials localhost inside the pod's network
    namespace): from the host, inside the container's network namespace (bridge mode: nothing is
    published), `appliance console`'s one-time URL logs in and the console answers."""
    if os.geteuid() != 0 or not shutil.which("nsenter"):
        pytest.skip("entering the container's network namespace needs root and nsenter")
    out = project.appliance(project.rehearsal, "console")
    url = re.search(r"(http://127\.0\.0\.1:\d+/console/login\?ticket=\S+)", out)
    assert url and f"port-forward pod/<pod> {url.group(1).split(':')[2].split('/')[0]}" in out, out
    pid = project.inspect(project.rehearsal)["State"]["Pid"]
    done = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", CONSOLE_IN_NETNS,
                           url.group(1)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "MyAgent" in done.stdout, done.stdout + done.stderr
    return int(done.stdout.split()[0])


def fleet_config(folder: Path, sb, agent) -> Path:
    path = folder / f"{agent.name}.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"name": agent.name, "description": "fleet test", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "FLT"},
        "retake": {"base_url": sb.base_url, "sandbox": True, "backoff_s": 0.1, "backoff_max_s": 1},
        "stream": {"width": 640, "height": 360, "min_speed": 0.5},
        "deploy": {"image": IMAGE_TAG, "cpus": 1.0, "memory_mb": 768},
    }))
    path.chmod(0o644)
    env = folder / f"{agent.name}.env"
    env.write_text(f"RETAKE_ACCESS_TOKEN={agent.access_token}\n")
    env.chmod(0o600)
    return path


def operator_surfaces_work(fleet, container, name: str, port: int) -> None:
    """The console (a one-time login from `fleet console`, then the page and /status with its
    cookie) and MCP over HTTP (the agent's token) through ``port`` on this host's loopback."""
    import asyncio
    import re

    import httpx2
    import requests
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    url = re.search(r"(http://127\.0\.0\.1:\d+/console/login\?ticket=\S+)", fleet.console(name)).group(1)
    assert url.startswith(f"http://127.0.0.1:{port}/")
    browser = requests.Session()
    browser.trust_env = False
    assert browser.get(url, timeout=10).status_code == 200
    assert any(c.name.startswith("appliance_session") for c in browser.cookies)  # named per appliance
    assert browser.get(f"http://127.0.0.1:{port}/status", timeout=10).json()["state"] == "live"
    token = json.loads(container.exec_run(["cat", "/state/control.json"]).output)["token"]

    async def mcp_status() -> dict:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)) as http, \
                Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client:
            assert "status" in {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("status", {})
            assert not result.is_error, result.content
            return result.structured_content
    assert asyncio.run(mcp_status())["state"] == "live"


def held_config(folder: Path) -> Path:
    """An agent for the real retake.tv without a token: it holds (alive, unready) on the
    engine's own network, its control API published on this host's loopback."""
    path = folder / "heldagent.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"name": "heldagent", "description": "fleet test", "image_url": "https://example.com/a.png",
                  "wallet_address": WALLET, "ticker": "FLT"},
        "deploy": {"image": IMAGE_TAG}}))
    path.chmod(0o644)
    return path


@pytest.mark.container
@pytest.mark.timeout(480)
def test_fleet_runs_two_agents_idempotently_and_stops_both_with_stream_stop(
        docker_client, appliance_image: BuiltImage, rtmp_sandbox) -> None:
    import requests

    from appliance.config import load_config
    from appliance.fleet.agents import load_fleet
    from appliance.fleet.docker import DockerFleet, format_table
    sb = rtmp_sandbox
    agents = [register_agent(sb, verified=True) for _ in range(2)]
    folder = short_tmpdir("apfleet-")
    folder.chmod(0o755)
    for agent in agents:
        fleet_config(folder, sb, agent)
    held_config(folder)
    lines: list[str] = []
    fleet = DockerFleet(docker_client, fleet=f"test{os.getpid()}", out=lines.append)
    mark = len(sb.requests())
    try:
        assert fleet.up(load_fleet(folder, load_config)) == {**{a.name: "created" for a in agents},
                                                             "heldagent": "created"}

        def both_live() -> bool:
            return publishers(sb, mark) >= {a.name for a in agents}
        try:
            wait_until(both_live, 150, "both agents to publish", interval=2)
        except AssertionError as exc:
            tails = "\n".join(f"--- {a.name} ---\n{fleet.logs(a.name, tail=40)}" for a in agents)
            raise AssertionError(f"{exc}\n{tails}") from None
        assert fleet.up(load_fleet(folder, load_config)) == {**{a.name: "unchanged" for a in agents},
                                                             "heldagent": "unchanged"}  # idempotent
        names = {a.name for a in agents}

        def rows_live():
            rows = fleet.status(load_fleet(folder, load_config))
            return rows if all(r.live == "yes" for r in rows if r.agent in names) else None
        rows = wait_until(rows_live, 60, "status to show both live", interval=3)
        table = format_table(rows)
        print("\n" + table, file=sys.stderr)
        assert {r.agent for r in rows} == names | {"heldagent"}, table
        assert all(r.state == "live" for r in rows if r.agent in names), table
        ports = {r.agent: int(r.control.rsplit(":", 1)[1]) for r in rows}
        assert len(set(ports.values())) == 3, table
        anonymous: set[str] = set()
        for agent in agents:
            container = docker_client.containers.get(agent.name)
            container.reload()
            assert container.labels["tv.retake.agent"] == agent.name
            assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
            log = container.logs().decode(errors="replace")
            assert agent.access_token not in log
            # each started clean: no engine restart, one Xvfb (both may hold the same number:
            # their /tmp differ, and X no longer listens where their shared network meets)
            assert int(container.attrs.get("RestartCount") or 0) == 0, log[:6000]  # the first run's end
            assert log.count("starting Xvfb") == 1 and "Cannot establish any listening sockets" not in log, log[-3000:]
            operator_surfaces_work(fleet, container, agent.name, ports[agent.name])
        held = requests.get(f"http://127.0.0.1:{ports['heldagent']}/health", timeout=10)
        assert held.status_code == 200, held.text  # published from the engine's network, on loopback only
        bindings = docker_client.containers.get("heldagent").attrs["HostConfig"]["PortBindings"]
        assert bindings[f"{ports['heldagent']}/tcp"][0]["HostIp"] == "127.0.0.1"
        for name in ports:
            mounts = docker_client.containers.get(name).attrs["Mounts"]
            anonymous |= {m["Name"] for m in mounts if m.get("Type") == "volume" and m.get("Name") != f"{name}-state"}
        assert anonymous, "the image declares VOLUME /config: each container has one"
        before_down = len(sb.requests())
        assert sorted(fleet.down()) == sorted(names | {"heldagent"})
        stops = [r for r in sb.requests()[before_down:] if "stream/stop" in entry_name(r)]
        assert len(stops) >= 2, [entry_name(r) for r in sb.requests()[before_down:]]
        assert fleet.containers() == {}
        volumes = {v.name for v in docker_client.volumes.list()}
        assert volumes >= {f"{a.name}-state" for a in agents}  # state kept
        assert not volumes & anonymous, volumes & anonymous  # and nothing else left behind
    finally:
        fleet.down()
        for name in [a.name for a in agents] + ["heldagent"]:
            try:
                docker_client.volumes.get(f"{name}-state").remove(force=True)
            except Exception as exc:  # gone already: nothing to clean
                print(f"volume {name}-state: {exc}")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(420)
def test_the_wheel_in_a_fresh_venv_outside_the_checkout_goes_live(rtmp_sandbox, tmp_path) -> None:
    """`pip install <wheel>` into a new venv, then `appliance up` from another folder (no
    APPLIANCE_HOME, no checkout on the path): the tree's files come from the package."""
    sb = rtmp_sandbox
    agent = register_agent(sb, verified=True)
    work = short_tmpdir("apwheel-")
    try:
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
                                str(REPO)], capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stdout + built.stderr
        wheel = next((work / "dist").glob("retake_appliance-*.whl"))
        subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=120)
        pip = subprocess.run([str(work / "venv/bin/pip"), "install", "-q", str(wheel)], capture_output=True,
                             text=True, timeout=400)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        config = work / "appliance.yaml"
        config.write_text(yaml.safe_dump({
            "agent": {"name": agent.name, "description": "wheel test", "image_url": "https://example.com/a.png",
                      "wallet_address": WALLET, "ticker": "WHL"},
            "retake": {"base_url": sb.base_url, "sandbox": True, "backoff_s": 0.1, "backoff_max_s": 1},
            "paths": {"state_dir": str(work / "state")},
            "stream": {"width": 640, "height": 360, "min_speed": 0.5},
        }))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("APPLIANCE_", "RETAKE_", "VIRTUAL_ENV", "PYTHON"))}
        env.update(RETAKE_ACCESS_TOKEN=agent.access_token, PATH=f"{work / 'venv/bin'}:{env.get('PATH', '')}")
        mark = len(sb.requests())
        log = work / "up.log"
        with open(log, "wb") as out:
            up = subprocess.Popen([str(work / "venv/bin/appliance"), "up", "--config", str(config)], cwd=work,
                                  env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            try:
                wait_until(lambda: agent.name in publishers(sb, mark), 120, "a publish from the installed wheel",
                           interval=1)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-4000:]}") from None
            home = subprocess.run([str(work / "venv/bin/python"), "-c",
                                   "from appliance.up.tree import appliance_home; print(appliance_home())"],
                                  capture_output=True, text=True, env=env, cwd=work, timeout=60).stdout.strip()
            assert home.startswith(str(work / "venv")) and home.endswith("appliance/tree"), home
        finally:
            assert terminate(up, timeout=60) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)
