"""Client-side records of Modal sandboxes: what this machine knows of their lifetimes.

The backend only *reports* lifetimes; the meter (`meter.py`) charges them (issue 15). A
record keeps when the sandbox was created, its provider-side deadline, when a command of
ours last ended in it, and how many of our commands are in flight, so that a sandbox found
gone can be given an end:

* no command in flight: it idled out, so it ended at `min(deadline, last_used +
  idle_timeout)` (Modal ends an idle sandbox after `idle_timeout` without an exec);
* a command in flight (its client was killed): the end is unknown, so the deadline, the
  upper bound the lease already holds.

The record also carries what the tags say (created, timeout) so a later process that did not
create the sandbox can reason about its deadline without an extra RPC.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import paths
from ..fileio import atomic_write_text, exclusive


@dataclass
class SandboxRecord:
    name: str
    sandbox_id: str
    created_at: float
    timeout_seconds: int
    idle_timeout_seconds: int
    last_used: float
    in_flight: int = 0

    @property
    def deadline(self) -> float:
        return self.created_at + self.timeout_seconds

    def known_end(self) -> float | None:
        """When a sandbox found gone ended, if this machine can tell (module docstring)."""
        if self.in_flight > 0:
            return None
        return min(self.deadline, self.last_used + self.idle_timeout_seconds)


def record_path(name: str) -> Path:
    return paths.sessions_state_dir() / f"{name}.modal.json"


def lock_path(name: str) -> Path:
    return paths.sessions_state_dir() / f"{name}.modal.lock"


def load(name: str) -> SandboxRecord | None:
    try:
        data = json.loads(record_path(name).read_text())
        return SandboxRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def store(record: SandboxRecord) -> None:
    path = record_path(record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(record), indent=2))


def _update(name: str, sandbox_id: str, started: int, at: float | None) -> None:
    with exclusive(lock_path(name)):
        record = load(name)
        if record is None or record.sandbox_id != sandbox_id:
            return
        record.in_flight = max(0, record.in_flight + started)
        if at is not None and at > record.last_used:
            record.last_used = at
        store(record)


def mark_started(name: str, sandbox_id: str) -> None:
    """A command of ours started in the sandbox."""
    _update(name, sandbox_id, +1, time.time())


def mark_used(name: str, sandbox_id: str, at: float | None = None) -> None:
    """A command of ours ended at `at`."""
    _update(name, sandbox_id, -1, time.time() if at is None else at)
