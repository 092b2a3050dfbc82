"""A fleet on one host: one container per agent, through the Docker API (docker or podman).

    appliance fleet up DIR [--prune]     create/replace/start what changed; nothing else
    appliance fleet status DIR           a table read from each appliance's control API
    appliance fleet logs DIR NAME        the container's log
    appliance fleet console DIR NAME     a one-time console login URL that works from this host
    appliance fleet restart DIR [NAME]   restart one agent, or all
    appliance fleet down DIR             stop every agent (SIGTERM: stream/stop first) and remove
                                         the containers and their anonymous volumes; the
                                         state volumes stay

Each container is named after its agent and has its own state volume ``<agent>-state``; it
carries labels naming the fleet (the folder's name, or ``--fleet``), the agent and a
fingerprint of everything it was made from (config, token file, image, options), which is how
`up` knows what changed: run twice, it changes nothing. A container of the fleet whose YAML
is gone is left alone, and stopped and removed by ``up --prune``.

The same hardening as compose.yaml: read-only root filesystem with tmpfs where the tree
writes, every capability dropped but the few starting as root needs (:data:`CAPABILITIES`,
docs/security.md), no-new-privileges, the image's healthcheck and init (tini), restart on
failure, CPU and memory limits and /dev/shm from the agent's ``deploy:`` section, rotated
logs. The agent's secrets (``<agent>.env``, ``<agent>.token``) become files in a private folder
beside the YAML, ``.secrets/<agent>/`` (mode 0700, each file 0400), mounted read-only at
``/run/secrets``: no secret is an environment variable (``docker inspect`` shows none). An
agent whose config targets a sandbox on this host's loopback shares the host's network
namespace (the token boundary allows only loopback for a sandbox); every other agent gets the
engine's default network.

The operator's surfaces (the console, MCP at /mcp, the CLI's control calls) reach each agent on
a control port of its own on this host's loopback, kept for the container's life (the label
``tv.retake.control``) and listed by `fleet status`. The appliance listens on that same port
(``appliance up --control-port``): with the host's network on 127.0.0.1 itself; on the engine's
network on the container's interfaces (``--control-listen 0.0.0.0``: a published port reaches
them, never the container's loopback), published on ``127.0.0.1:<port>`` only. One number
inside and out keeps the console's URL and its per-port session cookie apart per agent.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.errors import ApplianceError, ConfigError
from ..core.files import ensure_private_dir
from ..core.net import free_port
from ..core.secrets import Secret, write_store
from .agents import Agent

LABEL_FLEET = "tv.retake.fleet"
LABEL_AGENT = "tv.retake.agent"
LABEL_HASH = "tv.retake.fingerprint"
LABEL_CONTROL = "tv.retake.control"     # the control port on this host's loopback (and inside)
STOP_TIMEOUT_S = 30     # compose's stop_grace_period: stream/stop, then FFmpeg closes the stream
STATUS_TIMEOUT_S = 15
# everything the tree writes outside /state (see Dockerfile): a private tmpfs per container
TMPFS = {"/tmp": "rw,nosuid,nodev,size=256m"}  # noqa: S108 (a mount point)
# what starting as root needs, and no more (compose.yaml's cap_add; docs/security.md)
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
SECRETS_MOUNT = "/run/secrets"
LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}


def volume_name(agent_name: str) -> str:
    return f"{agent_name}-state"


@dataclass
class Row:
    """One line of `fleet status`."""

    agent: str
    state: str = "-"
    live: str = "-"
    viewers: str = "-"
    speed: str = "-"
    restarts: str = "-"
    health: str = "-"
    uptime: str = "-"
    control: str = "-"

    COLUMNS = ("agent", "state", "live", "viewers", "speed", "restarts", "health", "uptime", "control")


def format_table(rows: Iterable[Row]) -> str:
    table = [Row.COLUMNS] + [tuple(str(getattr(r, c)) for c in Row.COLUMNS) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(Row.COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)).rstrip() for line in table)


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _started_at(attrs: dict[str, Any]) -> float | None:
    """The container's start (UTC seconds) from State.StartedAt (RFC 3339, nanoseconds)."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", (attrs.get("State") or {}).get("StartedAt") or "")
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


class DockerFleet:
    """The fleet named ``fleet`` on the engine behind ``client`` (a docker.DockerClient)."""

    def __init__(self, client: Any, *, fleet: str, image: str | None = None,
                 out: Callable[[str], None] = print) -> None:
        self.client = client
        self.fleet = fleet
        self.image = image
        self.out = out

    # -- what runs ------------------------------------------------------------------------
    def containers(self) -> dict[str, Any]:
        """Agent name -> container, for every container of this fleet (running or not)."""
        found = self.client.containers.list(all=True, filters={"label": f"{LABEL_FLEET}={self.fleet}"})
        return {c.labels.get(LABEL_AGENT, c.name): c for c in found}

    def image_for(self, agent: Agent) -> str:
        return self.image or agent.settings.deploy.image

    def secrets_folder(self, agent: Agent) -> Path:
        """Where the agent's secrets are written as files (mounted at /run/secrets)."""
        return agent.config.parent / ".secrets" / agent.name

    def write_secrets(self, agent: Agent) -> Path:
        """The agent's secrets as files (0400) in :meth:`secrets_folder` (0700), made anew."""
        folder = self.secrets_folder(agent)
        ensure_private_dir(folder.parent)
        write_store(folder, {name: Secret(value) for name, value in agent.secrets().items()})
        return folder

    def control_port(self, agent: Agent, containers: dict[str, Any]) -> int:
        """The agent's control port on this host's loopback: its container's (kept while it
        exists), else its pinned ``control.port``, else a free one no other agent has."""
        current = containers.get(agent.name)
        if current is not None and str(current.labels.get(LABEL_CONTROL, "")).isdigit():
            return int(current.labels[LABEL_CONTROL])
        if agent.settings.control.port:
            return agent.settings.control.port
        taken = {str(c.labels.get(LABEL_CONTROL)) for c in containers.values()}
        for _ in range(20):
            port = free_port()
            if str(port) not in taken:
                return port
        raise ApplianceError("no free control port on 127.0.0.1")

    def run_options(self, agent: Agent, control_port: int) -> dict[str, Any]:
        """Everything `docker run` gets for ``agent``; its secrets are files (:meth:`write_secrets`)."""
        deploy = agent.settings.deploy
        host_network = agent.uses_local_sandbox
        listen = "127.0.0.1" if host_network else "0.0.0.0"  # noqa: S104 - see the module's docstring
        options: dict[str, Any] = {
            "name": agent.name,
            # the image's entrypoint is `appliance`
            "command": ["up", "--config", "/config/appliance.yaml", "--control-port", str(control_port),
                        "--control-listen", listen],
            "volumes": {volume_name(agent.name): {"bind": "/state", "mode": "rw"},
                        str(agent.config): {"bind": "/config/appliance.yaml", "mode": "ro"},
                        str(self.secrets_folder(agent)): {"bind": SECRETS_MOUNT, "mode": "ro"}},
            "restart_policy": {"Name": "on-failure"},
            "nano_cpus": int(deploy.cpus * 1e9),
            "mem_limit": f"{deploy.memory_mb}m",
            "shm_size": f"{deploy.shm_mb}m",
            "read_only": True,
            "tmpfs": dict(TMPFS),
            "cap_drop": ["ALL"],
            "cap_add": list(CAPABILITIES),
            "security_opt": ["no-new-privileges"],
            "log_config": LOG_CONFIG,
            "stop_signal": "SIGTERM",
        }
        if host_network:
            options["network_mode"] = "host"
        else:
            options["ports"] = {f"{control_port}/tcp": ("127.0.0.1", control_port)}
        return options

    def fingerprint(self, agent: Agent, control_port: int) -> str:
        image = self.client.images.get(self.image_for(agent)).id
        options = json.dumps(self.run_options(agent, control_port), sort_keys=True, default=str)
        return agent.fingerprint(image, options)

    def _check_readable(self, agent: Agent) -> None:
        mode = agent.config.stat().st_mode
        if not mode & 0o004:
            raise ConfigError(f"{agent.config}: not readable by the container's user (uid 10001)",
                              fix=f"chmod 644 {agent.config} (secrets never go in the YAML)")

    # -- commands -------------------------------------------------------------------------
    def up(self, agents: list[Agent], *, prune: bool = False) -> dict[str, str]:
        """Create, replace or start each agent's container as needed; returns agent -> action."""
        import docker
        running = self.containers()
        actions: dict[str, str] = {}
        for agent in agents:
            self._check_readable(agent)
            port = self.control_port(agent, running)
            try:
                wanted = self.fingerprint(agent, port)
            except docker.errors.ImageNotFound:
                raise ApplianceError(f"image {self.image_for(agent)} not found",
                                     fix="build it: docker build -t retake-appliance:latest .") from None
            current = running.get(agent.name)
            if current is not None and current.labels.get(LABEL_HASH) == wanted:
                current.reload()
                if current.status == "running":
                    actions[agent.name] = "unchanged"
                    continue
                current.start()
                actions[agent.name] = "started"
                continue
            if current is not None:
                self._stop(current)
                current.remove(force=True, v=True)
            elif self._name_taken(agent.name):
                raise ApplianceError(f"a container named {agent.name} exists outside fleet {self.fleet}",
                                     fix=f"remove or rename it (docker rm {agent.name}), or rename the agent")
            labels = {LABEL_FLEET: self.fleet, LABEL_AGENT: agent.name, LABEL_HASH: wanted, LABEL_CONTROL: str(port)}
            self.write_secrets(agent)
            self.client.containers.run(self.image_for(agent), detach=True, labels=labels,
                                       **self.run_options(agent, port))
            running[agent.name] = self.client.containers.get(agent.name)  # its port is taken now
            actions[agent.name] = "replaced" if current is not None else "created"
        if prune:
            for name in sorted(set(running) - {a.name for a in agents}):
                self._stop(running[name])
                running[name].remove(force=True, v=True)
                self._forget_secrets(running[name])
                actions[name] = "pruned"
        for name, action in actions.items():
            self.out(f"fleet {self.fleet}: {name}: {action}")
        return actions

    def _name_taken(self, name: str) -> bool:
        import docker
        try:
            self.client.containers.get(name)
            return True
        except docker.errors.NotFound:
            return False

    def _stop(self, container: Any) -> None:
        """SIGTERM and wait: `appliance up` stops the controller first (stream/stop)."""
        container.reload()
        if container.status in ("running", "restarting", "paused"):
            self.out(f"fleet {self.fleet}: stopping {container.name} (stream/stop, then every process)")
            container.stop(timeout=STOP_TIMEOUT_S)

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop (orderly) and remove the containers with their anonymous volumes (the image
        declares ``VOLUME /config /state``: /config gets one); the named state volumes stay."""
        containers = self.containers()
        chosen = sorted(containers) if names is None else [n for n in names if n in containers]
        for name in chosen:
            self._stop(containers[name])
            containers[name].remove(force=True, v=True)
            self._forget_secrets(containers[name])
            self.out(f"fleet {self.fleet}: {name}: stopped and removed (volume {volume_name(name)} kept)")
        return chosen

    @staticmethod
    def _forget_secrets(container: Any) -> None:
        """The secrets folder mounted into a removed container goes with it."""
        for mount in (getattr(container, "attrs", None) or {}).get("Mounts") or []:
            source = Path(str(mount.get("Source") or ""))
            if mount.get("Destination") == SECRETS_MOUNT and source.parent.name == ".secrets":
                shutil.rmtree(source, ignore_errors=True)

    def restart(self, names: Iterable[str] | None = None) -> list[str]:
        containers = self.containers()
        chosen = sorted(containers) if names is None else list(names)
        for name in chosen:
            if name not in containers:
                raise ApplianceError(f"no agent {name} in fleet {self.fleet}", fix="see `appliance fleet status`")
            containers[name].restart(timeout=STOP_TIMEOUT_S)
            self.out(f"fleet {self.fleet}: {name}: restarted")
        return chosen

    def logs(self, name: str, *, tail: int = 200) -> str:
        containers = self.containers()
        if name not in containers:
            raise ApplianceError(f"no agent {name} in fleet {self.fleet}", fix="see `appliance fleet status`")
        return containers[name].logs(tail=tail).decode(errors="replace")

    def console(self, name: str) -> str:
        """`appliance console` run in the agent's container, its one-time URL pointed at the
        agent's control port on this host."""
        containers = self.containers()
        if name not in containers:
            raise ApplianceError(f"no agent {name} in fleet {self.fleet}", fix="see `appliance fleet status`")
        container = containers[name]
        port = container.labels.get(LABEL_CONTROL)
        result = container.exec_run(["timeout", str(STATUS_TIMEOUT_S), "appliance", "console",
                                     "--config", "/config/appliance.yaml"], demux=True)
        out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
        text = (out or b"").decode(errors="replace")
        match = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*)", text)
        if result.exit_code != 0 or match is None or not port:
            reason = ((err or b"") + (out or b"")).decode(errors="replace").strip()[-300:]
            raise ApplianceError(f"{name}: no console login ({reason or 'no answer'})",
                                 fix=f"see `appliance fleet logs {self.fleet} {name}`")
        return (f"Open within 2 minutes (it works once): http://127.0.0.1:{port}{match.group(2)}\n"
                f"From another machine: ssh -N -L {port}:127.0.0.1:{port} <this host>, then the same URL")

    def appliance_status(self, container: Any) -> dict[str, Any]:
        """The appliance's own /status, asked inside the container (its control API listens
        on the container's loopback only)."""
        result = container.exec_run(["timeout", str(STATUS_TIMEOUT_S), "appliance", "status", "--json",
                                     "--config", "/config/appliance.yaml"], demux=True)
        stdout = (result.output[0] or b"") if isinstance(result.output, tuple) else (result.output or b"")
        if result.exit_code != 0:
            return {}
        try:
            data = json.loads(stdout.decode(errors="replace"))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def status(self, agents: list[Agent] | None = None) -> list[Row]:
        containers = self.containers()
        names = sorted(set(containers) | {a.name for a in agents or []})
        rows = []
        for name in names:
            row = Row(agent=name)
            container = containers.get(name)
            if container is None:
                row.state = "not created"
                rows.append(row)
                continue
            container.reload()
            attrs = container.attrs
            row.state = container.status
            row.health = ((attrs.get("State") or {}).get("Health") or {}).get("Status") or "-"
            port = container.labels.get(LABEL_CONTROL)
            row.control = f"127.0.0.1:{port}" if port else "-"
            engine_restarts = int(attrs.get("RestartCount") or 0)
            if container.status == "running":
                started = _started_at(attrs)
                row.uptime = _duration(time.time() - started) if started else "-"
                status = self.appliance_status(container)
                if status:
                    row.state = str(status.get("state", row.state))
                    row.live = "yes" if status.get("is_live") else "no"
                    row.viewers = str(status.get("viewers", "-"))
                    speed = status.get("speed")
                    row.speed = f"{speed:.2f}x" if isinstance(speed, (int, float)) else "-"
                    restarts = status.get("restarts")
                    row.restarts = str(engine_restarts + int(restarts)) if isinstance(restarts, int) \
                        else str(engine_restarts)
                else:
                    row.restarts = str(engine_restarts)
            rows.append(row)
        return rows
