"""The one "where it runs" file (<state>/control.json): who writes which part, who removes it,
and how readers find an appliance (including the one `appliance rehearse` started)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from appliance.control import where
from appliance.core.files import StateLayout


def read(state: Path) -> dict:
    return json.loads(StateLayout(state).control_json.read_text())


def test_up_announces_the_server_adds_its_token_and_each_takes_back_its_part(tmp_path: Path) -> None:
    where.announce(tmp_path, port=4321, display=":95", config=tmp_path / "a.yaml", runtime_dir=tmp_path / "run")
    found = where.find(tmp_path)
    assert (found.url, found.token, found.display, found.held) == ("http://127.0.0.1:4321", None, ":95", False)
    assert stat.S_IMODE(StateLayout(tmp_path).control_json.stat().st_mode) == 0o600
    # the control server (another process under `appliance up`): its token joins the same file
    data = read(tmp_path)
    data["pid"] = os.getpid() + 1  # announced by `appliance up`, not by this process
    StateLayout(tmp_path).control_json.write_text(json.dumps(data))
    where.publish(tmp_path, url="http://127.0.0.1:4321", token="t0k3n")
    assert where.find(tmp_path).token == "t0k3n" and where.find(tmp_path).display == ":95"
    assert "t0k3n" not in repr(where.find(tmp_path))
    where.withdraw(tmp_path)  # the controller stops: the token goes, the tree's part stays
    assert "token" not in read(tmp_path) and read(tmp_path)["display"] == ":95"
    where.remove(tmp_path)  # not ours (another pid announced it): left alone
    assert StateLayout(tmp_path).control_json.exists()


def test_live_alone_writes_and_removes_the_whole_file(tmp_path: Path) -> None:
    where.publish(tmp_path, url="http://127.0.0.1:5555", token="abc")
    assert where.find(tmp_path).url == "http://127.0.0.1:5555" and where.find(tmp_path).display is None
    where.withdraw(tmp_path)
    assert not StateLayout(tmp_path).control_json.exists()


def test_a_stale_file_with_another_url_is_replaced_by_the_server(tmp_path: Path) -> None:
    StateLayout(tmp_path).control_json.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": 1, "display": ":9"}))
    where.publish(tmp_path, url="http://127.0.0.1:2", token="new")
    assert read(tmp_path)["url"] == "http://127.0.0.1:2" and read(tmp_path)["display"] is None


def test_readers_find_the_rehearsal_when_nothing_runs_in_the_state_folder(tmp_path: Path) -> None:
    with pytest.raises(where.NotRunning, match="not running"):
        where.find(tmp_path)
    rehearsal = StateLayout(tmp_path).rehearsal_state
    where.publish(rehearsal, url="http://127.0.0.1:7777", token="r")
    assert where.find(tmp_path).url == "http://127.0.0.1:7777"
    where.publish(tmp_path, url="http://127.0.0.1:8888", token="m")  # the real one wins
    assert where.find(tmp_path).url == "http://127.0.0.1:8888"


def test_an_unreadable_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    StateLayout(tmp_path).control_json.write_text("{not json")
    with pytest.raises(Exception, match=r"control\.json: unreadable"):
        where.find(tmp_path)
