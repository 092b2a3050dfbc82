"""Kubernetes for a fleet: a kustomize base and one overlay per agent.

    appliance fleet render DIR --kubernetes --out OUT
    OUT/base/                 the appliance as one StatefulSet (+ its headless Service)
    OUT/agents/<name>/        per agent: name suffix, ConfigMap from its YAML, its Secret,
                              its resources; the PVC comes from the StatefulSet's template
    OUT/kustomization.yaml    every agent, and the image:  kubectl apply -k OUT

One StatefulSet per agent (replicas: 1), not one Deployment per agent and not one StatefulSet
for all: an agent is an identity (one RTMP key, one chat cursor, one set of credentials), and
a StatefulSet guarantees at most one pod per identity even when a node stops answering (a
Deployment would start a replacement while the old pod may still stream and answer chat; its
Recreate strategy covers rollouts only), and its volumeClaimTemplates give each agent its own
PVC without a separate manifest. Agents are not interchangeable replicas (each has its own
config, Secret and stream), so each gets its own StatefulSet.

Security (docs/security.md): the pod starts as root only for as long as needed — `appliance up`
gives the PVC to uid 10001 and reads the Secret (mounted at /run/secrets, one file per secret,
mode 0400) once — then every program runs as uid 10001 and the on-screen shell as uid 10002,
which can read none of it. Read-only root filesystem with emptyDirs where the tree writes
(/tmp: runtime folder, X socket and lock, openbox's and fontconfig's caches; /dev/shm in
memory), every capability dropped but the six starting as root needs (:data:`CAPABILITIES`,
all within the Pod Security "baseline" profile), no privilege escalation, the runtime's default
seccomp profile, no service account token. Probes run `appliance probe`, which reads the
control port the appliance chose from /state/control.json: no hard-coded port.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ConfigError
from .agents import Agent
from .settings import DeployConfig

APP = "retake-appliance"
SECRETS_MOUNT = "/run/secrets"  # the Secret: one file per key, named as the secret (RETAKE_ACCESS_TOKEN, ...)
# starting as root needs these, no more (docs/security.md); all within the Pod Security "baseline"
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
TERMINATION_GRACE_S = 45  # stream/stop + FFmpeg's clean close (<= 25 s), then the helpers
PROBE = ["appliance", "probe", "health", "--state", "/state"]


def k8s_name(agent_name: str) -> str:
    """A DNS-1123 label from an agent name (lowercase; '_' and '.' become '-')."""
    name = re.sub(r"[^a-z0-9-]+", "-", agent_name.lower()).strip("-")
    if not name:
        raise ConfigError(f"agent.name: {agent_name!r} leaves nothing for a Kubernetes name")
    return name[:40].rstrip("-")


def _resources(deploy: DeployConfig) -> dict[str, Any]:
    return {"requests": {"cpu": f"{int(deploy.cpu_request * 1000)}m", "memory": f"{deploy.memory_request_mb}Mi"},
            "limits": {"cpu": f"{int(deploy.cpus * 1000)}m", "memory": f"{deploy.memory_mb}Mi"}}


def statefulset(deploy: DeployConfig | None = None) -> dict[str, Any]:
    deploy = deploy or DeployConfig()
    labels = {"app.kubernetes.io/name": APP}
    probe = {"exec": {"command": PROBE}, "timeoutSeconds": 10}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": APP, "labels": dict(labels)},
        "spec": {
            "replicas": 1,  # one stream per agent: two pods would push to one RTMP key
            "serviceName": APP,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                    # root at the start only: `appliance up` gives the PVC to uid 10001, reads the
                    # Secret once, and every program runs as uid 10001 but the on-screen shell,
                    # which runs as uid 10002 and can read none of it (docs/security.md)
                    "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "appliance",
                        "image": APP,
                        "args": ["up", "--config", "/config/appliance.yaml"],  # entrypoint: tini -- appliance
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "privileged": False,
                                            "capabilities": {"drop": ["ALL"], "add": list(CAPABILITIES)}},
                        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 36},
                        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3},
                        "readinessProbe": {"exec": {"command": [*PROBE[:2], "ready", *PROBE[3:]]},
                                           "timeoutSeconds": 10, "periodSeconds": 10, "failureThreshold": 3},
                        "resources": _resources(deploy),
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/config", "readOnly": True},
                            {"name": "state", "mountPath": "/state"},
                            {"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True},
                            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (mount points of emptyDirs)
                            {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108
                        ],
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{APP}-config"}},
                        {"name": "secrets", "secret": {"secretName": f"{APP}-secrets", "optional": True,
                                                       "defaultMode": 0o400}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{deploy.shm_mb}Mi"}},
                    ],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "state"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    }


def service() -> dict[str, Any]:
    """The headless Service a StatefulSet names (no ports: nothing connects to the pod)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": APP, "labels": {"app.kubernetes.io/name": APP}},
            "spec": {"clusterIP": "None", "selector": {"app.kubernetes.io/name": APP}}}


def base_kustomization() -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "labels": [{"pairs": {"app.kubernetes.io/part-of": APP}}],
            "resources": ["statefulset.yaml", "service.yaml"]}


def agent_kustomization(agent: Agent, name: str) -> dict[str, Any]:
    """The overlay of one agent: names get ``-<name>``, its config, its Secret, its resources."""
    deploy = agent.settings.deploy
    patch = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": APP},
             "spec": {"template": {"spec": {
                 "containers": [{"name": "appliance", "resources": _resources(deploy)}],
                 "volumes": [{"name": "secrets", "secret": {"secretName": f"{APP}-secrets-{name}"}},
                             {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{deploy.shm_mb}Mi"}}],
             }}}}
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": ["../../base"],
            "nameSuffix": f"-{name}",
            "labels": [{"pairs": {"retake.tv/agent": name}, "includeSelectors": True}],
            "configMapGenerator": [{"name": f"{APP}-config", "files": ["appliance.yaml"]}],
            "patches": [{"patch": yaml.safe_dump(patch, sort_keys=False)}]}


def _dump(path: Path, data: dict[str, Any], header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


GENERATED = ("# Generated by `appliance fleet render --kubernetes` (appliance/fleet/kubernetes.py); "
             "edit the agents' YAML instead.\n")


def render(agents: list[Agent], out: Path, *, image: str | None = None) -> list[Path]:
    """Write the base, one overlay per agent and the top kustomization; returns the files."""
    names: dict[str, str] = {}
    for agent in agents:
        name = k8s_name(agent.name)
        if name in names:
            raise ConfigError(f"{agent.config}: agent.name {agent.name} and {names[name]} are one Kubernetes "
                              f"name ({name})", fix="rename one of the agents")
        names[name] = agent.name
    out = Path(out)
    written = []
    for path, data in ((out / "base/statefulset.yaml", statefulset()), (out / "base/service.yaml", service()),
                       (out / "base/kustomization.yaml", base_kustomization())):
        _dump(path, data, GENERATED)
        written.append(path)
    entries = []
    for agent in agents:
        name = k8s_name(agent.name)
        folder = out / "agents" / name
        folder.mkdir(parents=True, exist_ok=True)
        data = agent.settings.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        brain = data.get("chat", {}).get("brain")
        if isinstance(brain, dict):  # the union's discriminator is a default, yet the config requires it
            brain["engine"] = agent.settings.chat.brain.engine
        data.setdefault("paths", {}).pop("state_dir", None)  # always /state (the PVC) in the pod
        data["paths"] = data["paths"] or None
        if data["paths"] is None:
            del data["paths"]
        (folder / "appliance.yaml").write_text(
            f"# {agent.name}: from {agent.config.name}\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        _dump(folder / "kustomization.yaml", agent_kustomization(agent, name), GENERATED)
        written += [folder / "appliance.yaml", folder / "kustomization.yaml"]
        entries.append(f"agents/{name}")
    image_name, _, tag = (image or agents[0].settings.deploy.image).rpartition(":")
    if not image_name or "/" in tag:
        image_name, tag = (image or agents[0].settings.deploy.image), "latest"
    top = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
           "resources": entries, "images": [{"name": APP, "newName": image_name, "newTag": tag}]}
    _dump(out / "kustomization.yaml", top, GENERATED)
    written.append(out / "kustomization.yaml")
    return written
