"""Settings of how `appliance fleet` deploys this agent."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..core.settings import SettingsModel


class DeployConfig(SettingsModel):
    """How `appliance fleet` runs this agent: a container (docker/podman) or a Kubernetes pod.
    Defaults from the density figures (README, "Density"): one appliance at 1280x720@30 uses
    about half a core and 370 MB for the whole process tree."""

    image: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")] = (
        "retake-appliance:latest")
    cpus: Annotated[float, Field(gt=0, le=64)] = 1.0              # limit (docker --cpus, Kubernetes limits.cpu)
    cpu_request: Annotated[float, Field(gt=0, le=64)] = 0.5       # Kubernetes requests.cpu
    memory_mb: Annotated[int, Field(ge=256, le=65536)] = 1024      # limit (docker --memory, limits.memory)
    memory_request_mb: Annotated[int, Field(ge=128, le=65536)] = 512  # Kubernetes requests.memory
    shm_mb: Annotated[int, Field(ge=16, le=4096)] = 64             # /dev/shm (measured: empty while streaming)
