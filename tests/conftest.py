"""Shared fixtures: real processes and the sandbox (see each module of tests/support/).

Tiers (markers are set here from the folder, so `-m unit` and `scripts/test.sh --fast` select
them): ``unit/`` no processes, no sockets beyond an in-process fake; ``integration/`` one real
process or server at a time; ``e2e/`` the whole tree or the image.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.media import flv_target, pulse_server, xvfb_display  # noqa: F401
from tests.support.sandbox import rtmp_sandbox, sandbox, sandbox_agent  # noqa: F401

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A test that runs a command in this process (``cli.main``) points the root logger at the
    stderr pytest captures for that test; put the root logger back after it, so later log lines
    never go to a closed capture ("--- Logging error --- I/O operation on closed file")."""
    import logging
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
