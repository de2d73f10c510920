"""Host tests: the host is on, the local backend stands in for Modal, every path is in
the test's temporary home (conftest at the top), and every host started is stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import make_workspace
from tests.host.helpers import alive, host_pids, stop_hosts, wait_for

__all__ = ["alive", "host_pids", "wait_for"]

HOST_ENV = {"MODAL_OFFLOAD_HOST": "1", "MODAL_OFFLOAD_BACKEND": "local",
            "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.2", "MODAL_OFFLOAD_HOST_IDLE_SECONDS": "60"}


@pytest.fixture
def host_env(monkeypatch: pytest.MonkeyPatch, tmp_home: Path) -> Iterator[dict[str, str]]:
    for name, value in HOST_ENV.items():
        monkeypatch.setenv(name, value)
    yield dict(HOST_ENV)
    stop_hosts(tmp_home)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", files={"data/input.txt": "hello\n"})
