"""Finding and stopping the hosts a test started (by pid, from its own pid files)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def host_pids(home: Path) -> list[int]:
    out = []
    for pidfile in (home / ".run" / "modal-offload").glob("host-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            out.append(int(json.loads(pidfile.read_text())["pid"]))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _gone(pid: int) -> bool:
    return not alive(pid)


def stop_hosts(home: Path) -> None:
    for pid in host_pids(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_for(functools.partial(_gone, pid), 5):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
