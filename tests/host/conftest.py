"""Host tests: the host is on, the local backend stands in for Modal, every path is in
the test's temporary home (conftest at the top), and every host started is stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import make_workspace

HOST_ENV = {"MODAL_OFFLOAD_HOST": "1", "MODAL_OFFLOAD_BACKEND": "local",
            "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.2", "MODAL_OFFLOAD_HOST_IDLE_SECONDS": "60"}


def host_pids(home: Path) -> list[int]:
    out = []
    for pidfile in (home / ".run" / "modal-offload").glob("host-*.json"):
        with contextlib.suppress(OSError, ValueError):
            out.append(int(json.loads(pidfile.read_text())["pid"]))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def host_env(monkeypatch: pytest.MonkeyPatch, tmp_home: Path) -> Iterator[dict[str, str]]:
    for name, value in HOST_ENV.items():
        monkeypatch.setenv(name, value)
    yield dict(HOST_ENV)
    # Stop every host this test started (by pid, from its own pid files).
    for pid in host_pids(tmp_home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda pid=pid: not alive(pid), 5):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", files={"data/input.txt": "hello\n"})
