"""Client-side records of Modal sandboxes and the metering of their lifetime.

Metering rule (the provider bills a sandbox for its whole life, busy or idle):

* A sandbox's life starts when `Sandbox.create` returns (the container is scheduled after).
* Every instant of a sandbox's life is charged to the ledger exactly once, either by the
  gateway's meter (which runs while a command is in flight: sync up, run, sync back) or here.
* The record keeps `accounted_until`: the moment up to which the sandbox's life is already
  charged. Opening a session charges the gap `now - accounted_until` (creation time, and idle
  time the sandbox was billed between commands) and moves `accounted_until` to now; from then
  on the gateway's meter charges. When a process ends, `accounted_until` moves to that moment.
* `session stop` and replacement (dead, expired or over the budget cap) charge the final gap up
  to termination. A sandbox that died on its own (idle timeout, provider timeout, killed) is
  charged up to the earliest of now, its hard deadline and `accounted_until + idle_timeout`:
  an upper bound, because the client cannot learn the provider's exact end time.
* Overlap is tiny and always on the side of over-charging (a budget is a cap): the meter keeps
  running for the local apply of sync back after the last process ended, and a client killed
  mid-command leaves `accounted_until` at its open, so its heartbeats are charged again.

The record also carries what the tags say (created, timeout) so a later process that did not
create the sandbox can reason about its deadline without an extra RPC.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import paths
from ..budget import Ledger
from ..fileio import atomic_write_text, exclusive

IDLE_SOURCE = "modal-idle"


@dataclass
class SandboxRecord:
    name: str
    sandbox_id: str
    created_at: float
    timeout_seconds: int
    idle_timeout_seconds: int
    accounted_until: float
    idle_charged_min: float = 0.0
    settled: bool = False  # final charge done: nothing more is ever charged for this sandbox

    @property
    def deadline(self) -> float:
        return self.created_at + self.timeout_seconds

    @property
    def charged_min(self) -> float:
        """Minutes of this sandbox's life the ledger has been charged for (meter + gaps)."""
        return max(0.0, self.accounted_until - self.created_at) / 60

    def latest_end(self, now: float) -> float:
        """When a sandbox found dead ended at the latest (see the module docstring)."""
        return min(now, self.deadline, self.accounted_until + self.idle_timeout_seconds)


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


def charge_gap(record: SandboxRecord, until: float, ledger: Ledger | None = None,
               note: str | None = None) -> float:
    """Charge `record.accounted_until .. until` (if positive) and move the mark; minutes."""
    if record.settled:
        return 0.0
    gap = until - record.accounted_until
    if gap <= 0:
        return 0.0
    minutes = gap / 60
    # Only final charges carry a note: one per warm command would bloat the ledger.
    (ledger or Ledger()).charge(minutes, IDLE_SOURCE,
                                note=f"{record.sandbox_id}: {note}" if note else None)
    record.accounted_until = until
    record.idle_charged_min += minutes
    return minutes


def mark_used(name: str, sandbox_id: str, at: float | None = None) -> None:
    """A process ended at `at`: the gateway's meter charged the life up to here."""
    at = time.time() if at is None else at
    with exclusive(lock_path(name)):
        record = load(name)
        if record is None or record.sandbox_id != sandbox_id or record.settled:
            return
        if at > record.accounted_until:
            record.accounted_until = at
            store(record)
