"""`appliance fleet ACTION DIR`: the command line of :mod:`.docker` and :mod:`.kubernetes`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ApplianceError, ConfigError
from .agents import Loader, load_fleet

if TYPE_CHECKING:
    from docker import DockerClient

ACTIONS = ("up", "down", "status", "logs", "console", "restart", "render")
ENGINE_FALLBACK = "unix:///run/podman-docker.sock"  # podman's Docker-compatible socket


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("folder", help="one <agent>.yaml per agent (and <agent>.env with its token)")
    parser.add_argument("names", nargs="*", help="logs/console/restart/down: these agents only")
    parser.add_argument("--fleet", help="the fleet's name (its label; default: the folder's name)")
    parser.add_argument("--image", help="the image (default: each agent's deploy.image)")
    parser.add_argument("--prune", action="store_true", help="up: stop and remove agents whose YAML is gone")
    parser.add_argument("--tail", type=int, default=200, help="logs: lines from the end")
    parser.add_argument("--kubernetes", action="store_true", help="render: Kubernetes manifests (kustomize)")
    parser.add_argument("--out", help="render: the output folder (default: FOLDER/kubernetes)")


def docker_client(*, timeout: int = 120) -> DockerClient:
    """DOCKER_HOST, else podman's socket when it is there, else the docker default."""
    import docker
    host = os.environ.get("DOCKER_HOST")
    if not host and Path(ENGINE_FALLBACK.removeprefix("unix://")).exists():
        host = ENGINE_FALLBACK
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout) if host else docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        raise ApplianceError(f"no container engine answers at {host or 'the default socket'} ({type(exc).__name__})",
                             fix="start docker (or podman's API service) or set DOCKER_HOST") from None
    return client


def run_fleet(args: argparse.Namespace, load: Loader) -> int:
    folder = Path(args.folder)
    if args.action == "render":
        from .kubernetes import render
        if not args.kubernetes:
            raise ApplianceError("render: say what to render", fix="pass --kubernetes")
        out = Path(args.out) if args.out else folder / "kubernetes"
        files = render(load_fleet(folder, load), out, image=args.image)
        print(f"wrote {len(files)} files to {out}: kubectl apply -k {out}")
        return 0
    from .docker import DockerFleet, format_table
    errors: list[ConfigError] = []
    # status shows every agent it can, bad files named below the table; up starts nothing then
    agents = load_fleet(folder, load, errors=errors if args.action == "status" else None) \
        if args.action in ("up", "status") else []
    fleet = DockerFleet(docker_client(), fleet=args.fleet or folder.resolve().name, image=args.image)
    names = args.names or None
    if args.action == "up":
        fleet.up(agents, prune=args.prune)
    elif args.action == "down":
        fleet.down(names)
    elif args.action == "restart":
        fleet.restart(names)
    elif args.action in ("logs", "console"):
        if not args.names or len(args.names) != 1:
            raise ApplianceError(f"{args.action}: name one agent", fix=f"appliance fleet {args.action} DIR NAME")
        if args.action == "logs":
            print(fleet.logs(args.names[0], tail=args.tail), end="")
        else:
            print(fleet.console(args.names[0]))
    else:
        print(format_table(fleet.status(agents)))
        for error in errors:
            print(f"config error: {error}", file=sys.stderr)
        if errors:
            return ConfigError.exit_code
    return 0
