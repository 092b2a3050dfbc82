"""Placement on a host, computed: the state folder must be on a volume in a container (read
from a literal mountinfo), `appliance live` alone takes its display from the environment, a
probe reads the state folder from the YAML as written. Placement with real displays and ports,
and holding: tests/e2e/test_deploy.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.core.errors import ConfigError
from appliance.core.paths import DEFAULT_STATE_DIR
from appliance.up.place import (
    check_state_on_volume,
    volume_of,
)
from tests.support.data import agent_section, settings_in

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
    inside = parse_config({"agent": agent_section("DeployTest"),
                           "paths": {"state_dir": "/home/appliance/.local/state/x"}}, "t")
    with pytest.raises(ConfigError, match=r"paths\.state_dir: .* not on a volume") as info:
        check_state_on_volume(inside, in_container=True, mountinfo=MOUNTINFO)
    assert "remove paths.state_dir" in str(info.value)
    on_volume = parse_config({"agent": agent_section("DeployTest"), "paths": {"state_dir": "/state"}}, "t")
    check_state_on_volume(on_volume, in_container=True, mountinfo=MOUNTINFO)
    check_state_on_volume(inside, in_container=False, mountinfo=MOUNTINFO)  # a bare host: anywhere


def test_live_alone_takes_an_auto_display_from_its_environment(tmp_path):
    from appliance.up.place import display_for_live
    settings = settings_in(tmp_path, "DeployTest")
    assert display_for_live(settings, {"DISPLAY": ":42"}).stream.display == ":42"
    with pytest.raises(ConfigError, match=r"stream\.display: auto is chosen by `appliance up`"):
        display_for_live(settings, {})
    pinned = settings_in(tmp_path, "DeployTest", stream={"display": ":7"})
    assert display_for_live(pinned, {"DISPLAY": ":42"}).stream.display == ":7"


def test_a_probe_finds_the_state_folder_from_the_yaml_as_written(tmp_path):
    from appliance.up.place import probe_state_dir
    config = tmp_path / "c.yaml"
    config.write_text(f"agent: {{name: not valid}}\npaths: {{state_dir: {tmp_path / 'st'}}}\n")
    assert probe_state_dir(config) == tmp_path / "st"  # on a bare host, even when the rest does not validate
    config.write_text("agent: {name: A}\n")
    assert probe_state_dir(config) == DEFAULT_STATE_DIR
    assert probe_state_dir(tmp_path / "missing.yaml") == DEFAULT_STATE_DIR
