"""`appliance doctor`'s pinned-port check against real sockets of this host (a port held by a
listener is reported taken before `up`, unpinned ports are not checked). The rest of doctor's
rows with fakes: tests/unit/test_doctor.py."""

from __future__ import annotations

import socket
from pathlib import Path

from appliance.doctor import check_ports
from tests.support.data import settings_in


def test_pinned_ports_are_checked_before_up_and_unpinned_ones_are_not(tmp_path: Path) -> None:
    assert check_ports(settings_in(tmp_path, "DocAgent")) == []  # display auto, control.port 0: chosen by `up`
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        rows = check_ports(settings_in(tmp_path, "DocAgent", control={"port": port}))
    assert [(r.name, r.verdict) for r in rows] == [(f"control port {port} free", "FAIL")]
    assert "control.port: 0" in rows[0].fix
