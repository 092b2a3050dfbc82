"""`appliance fleet` against a fake Docker client (the control ports it hands out are real free
ports of this host): idempotent, replaces what changed, prunes what is gone only when asked, one
control port per agent kept across ups, status despite a bad YAML. Real containers:
tests/e2e/test_deploy_containers.py."""

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
        path.write_text(yaml.safe_dump({"agent": agent_section(name), "deploy": {"cpus": 0.5, "memory_mb": 700}}))
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
        path.write_text(yaml.safe_dump({"agent": agent_section(name), "retake": retake}))
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
    (tmp_path / "ann.yaml").write_text(yaml.safe_dump({"agent": agent_section("ann", description="new")}))
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
        path.write_text(yaml.safe_dump({"agent": agent_section(name)}))
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
