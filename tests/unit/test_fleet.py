"""`appliance fleet up` against a fake Docker client: idempotent, replaces what changed, prunes
what is gone only when asked. Real containers: tests/e2e/test_deploy_containers.py."""

from __future__ import annotations

import pytest
import yaml

from appliance.config import load_config
from appliance.core.errors import ConfigError
from tests.support.data import agent_section


class FakeContainer:
    def __init__(self, client, name, labels, options):
        self.client, self.name, self.labels, self.options = client, name, labels, options
        self.status, self.events = "running", []

    def reload(self):
        pass

    def stop(self, timeout):
        self.events.append(("stop", timeout))
        self.status = "exited"

    def start(self):
        self.events.append(("start",))
        self.status = "running"

    def remove(self, force=False):
        self.events.append(("remove",))
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

    def run(self, image, detach, labels, environment, **options):
        container = FakeContainer(self.client, options["name"], labels, dict(options, image=image, env=environment))
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
        path.write_text(yaml.safe_dump({"agent": agent_section(name), "deploy": {"cpus": 0.5, "memory_mb": 700}}))
        path.chmod(0o644)
    (tmp_path / "ann.env").write_text("# the token\nRETAKE_ACCESS_TOKEN='tok-ann'\n")
    client = FakeDocker()
    fleet = DockerFleet(client, fleet="f", out=lambda line: None)
    assert fleet.up(load_fleet(tmp_path, load_config)) == {"ann": "created", "ben": "created"}
    ann = client.running["ann"]
    assert ann.options["env"] == {"RETAKE_ACCESS_TOKEN": "tok-ann"} and client.running["ben"].options["env"] == {}
    assert ann.options["nano_cpus"] == 500_000_000 and ann.options["mem_limit"] == "700m"
    assert ann.options["read_only"] and ann.options["cap_drop"] == ["ALL"]
    assert ann.options["security_opt"] == ["no-new-privileges"]
    assert ann.options["restart_policy"]["Name"] == "on-failure"
    assert ann.options["volumes"]["ann-state"]["bind"] == "/state" and "network_mode" not in ann.options
    assert ann.labels["tv.retake.agent"] == "ann" and ann.labels["tv.retake.fleet"] == "f"
    assert fleet.up(load_fleet(tmp_path, load_config)) == {"ann": "unchanged", "ben": "unchanged"}
    (tmp_path / "ann.env").write_text("RETAKE_ACCESS_TOKEN=tok-new\n")  # a new token: replaced, with an orderly stop
    assert fleet.up(load_fleet(tmp_path, load_config)) == {"ann": "replaced", "ben": "unchanged"}
    assert ann.events[:2] == [("stop", 30), ("remove",)]
    assert client.running["ann"].options["env"]["RETAKE_ACCESS_TOKEN"] == "tok-new"
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
