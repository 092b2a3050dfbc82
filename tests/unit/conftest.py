"""The unit tier's promise, enforced: no child process and no network socket in any test here
(setup, call or teardown). A test that needs a real program or server belongs in
tests/integration/; logic is tested here with injected fakes (e.g. tests/support/transport.py's
transport for the retake client)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

MOVE = "tests/unit runs no processes and opens no network sockets: inject a fake, or move the test to tests/integration"


class NotAUnitTest(AssertionError):
    pass


def _refuse(what: str) -> Any:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise NotAUnitTest(f"{what}: {MOVE}")
    return refuse


_GUARDED = [(subprocess.Popen, "__init__", "a child process"), (os, "fork", "a fork"),
            (os, "posix_spawn", "a child process"), (os, "posix_spawnp", "a child process"),
            (os, "system", "a shell"), (socket.socket, "connect", "a socket connect"),
            (socket.socket, "connect_ex", "a socket connect"), (socket.socket, "bind", "a socket bind")]


@contextmanager
def _no_processes_or_sockets() -> Iterator[None]:
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in _GUARDED]
    for owner, name, what in _GUARDED:
        setattr(owner, name, _refuse(what))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _no_processes_or_sockets():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _no_processes_or_sockets():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    with _no_processes_or_sockets():
        return (yield)
