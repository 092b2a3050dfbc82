"""The held appliance's commands (`appliance up` waiting for a fix): the control API's whole
command shape, every command that would act refused with the reason."""

from __future__ import annotations

import pytest

from appliance.control.protocols import Commands
from appliance.core.errors import ApplianceError, ConfigError
from appliance.up.hold import HoldCommands


def test_a_held_appliance_answers_every_command_and_refuses_the_ones_that_act(tmp_path) -> None:
    held = HoldCommands(ConfigError("agent.ticker: required", fix="add it"), config=tmp_path / "c.yaml")
    members = [name for name in vars(Commands) if not name.startswith("_")]
    assert [name for name in members if not callable(getattr(held, name, None))] == []  # /reply was a 404
    for act in (lambda: held.say("hi"), lambda: held.reply("m1", "hi", None), lambda: held.scene("brb")):
        with pytest.raises(ApplianceError, match=r"held: agent\.ticker: required"):
            act()
    assert held.ready() == (False, "held: agent.ticker: required — add it")
    assert held.status()["waiting"]["reason"] == "bad_config"
