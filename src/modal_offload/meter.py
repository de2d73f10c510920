"""The meter: the one place that charges remote time (issue 15).

The unit that is metered is the *sandbox*, from its creation to its end, once, whatever
runs in it and whichever process is alive, because that is what the provider bills
(modal.com/docs/guide/sandbox-resources: per second, for the whole life, busy or idle).

- Before a backend creates a sandbox it asks `grant(want)` (via `SessionSpec.grant`): the
  ledger reserves a lease of at most `budget - used - outstanding leases` seconds, which
  becomes the provider-side timeout. With many workspaces at once the leases add up to the
  cap, so together they can never be billed past it, even if every laptop dies.
- Once the session is open, `attach` binds the lease to the sandbox's id (or finds the lease
  it already holds, or adopts a sandbox another machine created), and ends the leases of
  sandboxes the backend reports gone under the same name: at the end it reports, else at
  their deadline (an upper bound: the cap's safe side).
- While commands run, one heartbeat per sandbox per process (shared by concurrent
  commands) settles the lease up to now; the ledger's `charged_until` only moves forward, so
  a second process settling the same sandbox never charges an instant twice. Idle time
  between commands is charged by the next settle (a command, the host's heartbeat,
  `session status`), and `end` charges up to the sandbox's end and releases the rest.
Backends never touch the ledger: they only report lifetimes (`Session.created_at`,
`Session.deadline`, `Session.ended`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from .backends._base import Session
from .budget import Ledger, NoLease, why
from .errors import BudgetExhausted, OffloadError

# How far usage plus leases may lie past the cap before a live sandbox is replaced: the
# rounding of whole-second timeouts, not real overspend.
OVER_CAP_SLACK_MIN = 5 / 60


def _new_lease_id() -> str:
    """128 random bits as 32 hex digits (what `uuid4().hex` gave, without importing uuid,
    which loads `platform`: ~2 ms on every in-process command, issue 17)."""
    return os.urandom(16).hex()


@dataclass(frozen=True)
class Budget:
    minutes: float
    usd: float | None = None


class SandboxMeter:
    """Meters the sandboxes of one ledger. `source` and `workspace` label the charges."""

    def __init__(self, ledger: Ledger, budget: Budget, *, source: str, workspace: str,
                 usd_per_s: float, interval: float) -> None:
        self.ledger = ledger
        self.budget = budget
        self.source = source
        self.workspace = workspace
        self.usd_per_s = usd_per_s
        self.interval = interval
        self.reserved: str | None = None  # lease id reserved for a sandbox being created
        self.error: BaseException | None = None  # the last failed settle, for a notice

    # -- before creation ---------------------------------------------------------------
    def grant(self, name: str, want_s: int) -> int:
        """Called by a backend right before it creates a sandbox: the seconds of life the
        budget allows it (its provider-side timeout). Raises BudgetExhausted when none,
        or when the ledger cannot be written (the cap could not be kept)."""
        lease_id = _new_lease_id()
        try:
            granted = self.ledger.reserve(
                lease_id=lease_id, name=name, source=self.source, workspace=self.workspace,
                want_s=want_s, usd_per_s=self.usd_per_s, budget_min=self.budget.minutes,
                budget_usd=self.budget.usd, now=time.time())
        except NoLease as exc:
            raise BudgetExhausted(exc.message, exc.hint) from None
        except OSError as exc:
            raise BudgetExhausted(
                f"no lease for a new sandbox: the usage ledger {self.ledger.path} cannot be "
                f"written ({why(exc)})", "free disk space or fix the file, then run again"
            ) from None
        self.reserved = lease_id
        return int(granted)

    # -- once the session is open --------------------------------------------------------
    def attach(self, session: Session) -> str:
        """The lease id the open session's sandbox holds (binding or adopting one), after
        ending the leases of sandboxes the backend found gone under the same name."""
        now = time.time()
        snapshot = self.ledger.snapshot()
        reserved, self.reserved = self.reserved, None
        mine = [lease for lease in snapshot.leases if lease.sandbox_id == session.id]
        orphans = []
        for lease in snapshot.leases:
            if lease.name != session.name or lease.lease_id == reserved:
                continue
            if lease.sandbox_id not in ("", session.id):
                # Replaced or gone: up to the end the backend knows, else its deadline.
                end = session.ended.get(lease.sandbox_id, lease.deadline)
                self.ledger.settle(lease.lease_id, end, end=True)
            elif lease.sandbox_id == "":
                orphans.append(lease)
        if mine:
            if reserved is not None:  # someone else created it meanwhile: give it back
                self.ledger.settle(reserved, 0.0, end=True)
            return mine[0].lease_id
        if reserved is None and orphans:
            # A process died between creating this sandbox and binding its lease.
            reserved = orphans.pop().lease_id
        for lease in orphans:
            if lease.deadline < now:  # never bound: whether it ran is unknown, so charged
                self.ledger.settle(lease.lease_id, lease.deadline, end=True)
        if reserved is None:
            # A sandbox created elsewhere (another machine, or before this ledger knew of
            # it): its deadline is what it is; charge its life from now on.
            reserved = _new_lease_id()
            self.ledger.reserve(lease_id=reserved, name=session.name, source=self.source,
                                workspace=self.workspace, want_s=1.0, usd_per_s=self.usd_per_s,
                                budget_min=float("inf"), budget_usd=None, now=now)
            self.ledger.bind(reserved, session.id, now, deadline=max(session.deadline, now + 1))
            return reserved
        self.ledger.bind(reserved, session.id, session.created_at, deadline=session.deadline)
        return reserved

    def end_session(self, name: str, at: float | None = None) -> None:
        """A session was ended by name (its image moved on, issue 12): end its leases."""
        try:
            for lease in self.ledger.snapshot().leases:
                if lease.name == name:
                    self.ledger.settle(lease.lease_id, time.time() if at is None else at,
                                       end=True)
        except (OSError, OffloadError) as exc:  # the lease keeps the cap; settled later
            self.error = exc

    def over_cap(self) -> bool:
        """Usage plus live leases exceed the budget (by more than the rounding of whole
        seconds): minutes were spent elsewhere after the leases were granted."""
        snap = self.ledger.snapshot()
        if snap.used_min + snap.outstanding_min > self.budget.minutes + OVER_CAP_SLACK_MIN:
            return True
        usd = self.budget.usd
        return usd is not None and snap.used_usd + snap.outstanding_usd > usd * 1.001

    # -- while it lives ----------------------------------------------------------------------
    def settle(self, lease_id: str, until: float | None = None) -> float:
        """Charge the sandbox up to `until` (now); never raises: a failed write leaves the
        lease outstanding, which keeps the cap, and the next settle retries it."""
        try:
            seconds = self.ledger.settle(lease_id, time.time() if until is None else until)
        except (OSError, OffloadError) as exc:
            self.error = exc
            import logging  # only on this rare path: ~2 ms on every command otherwise

            logging.getLogger(__name__).debug("could not settle lease %s: %s", lease_id,
                                              why(exc))
            return 0.0
        self.error = None
        return seconds

    def end(self, lease_id: str, at: float | None = None) -> float:
        try:
            return self.ledger.settle(lease_id, time.time() if at is None else at, end=True)
        except (OSError, OffloadError) as exc:
            self.error = exc
            return 0.0

    @contextmanager
    def running(self, lease_id: str) -> Iterator[None]:
        """Settle the sandbox every `interval` while a command runs in it, and at the end.
        Concurrent commands in one sandbox share one heartbeat."""
        beat = _Heartbeat.join(self, lease_id)
        try:
            yield
        finally:
            beat.leave()
            self.settle(lease_id)

    def notice(self) -> str | None:
        """One line when the last charge could not be written (the lease still holds it)."""
        if self.error is None:
            return None
        return (f"remote time could not be written to {self.ledger.path} ({why(self.error)}); "
                "the sandbox's lease still counts against the budget and the next command "
                "writes it")


class _Heartbeat:
    """One thread per (ledger, lease) in this process, however many commands share it."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _beats: ClassVar[dict[tuple[str, str], _Heartbeat]] = {}

    def __init__(self, meter: SandboxMeter, lease_id: str) -> None:
        self.meter = meter
        self.lease_id = lease_id
        self.users = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="sandbox-meter")

    @classmethod
    def join(cls, meter: SandboxMeter, lease_id: str) -> _Heartbeat:
        key = (str(meter.ledger.path), lease_id)
        with cls._lock:
            beat = cls._beats.get(key)
            if beat is None:
                beat = cls._beats[key] = _Heartbeat(meter, lease_id)
                beat.thread.start()
            beat.users += 1
            return beat

    def leave(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users == 0:
                self._beats.pop((str(self.meter.ledger.path), self.lease_id), None)
                self.stop.set()

    def _run(self) -> None:
        while not self.stop.wait(self.meter.interval):
            self.meter.settle(self.lease_id)


def settle_all(ledger: Ledger, alive: dict[str, bool], *, only_known: bool = False) -> float:
    """Settle leases up to now (their deadline at the latest), ending those whose sandbox
    `alive` says has ended: charged up to now, at most one heartbeat past its real end when
    the caller checks once a heartbeat (the session host does). With `only_known`, leases
    of sandboxes `alive` does not name are left alone. Returns seconds charged."""
    total = 0.0
    now = time.time()
    for lease in ledger.snapshot().leases:
        state = alive.get(lease.sandbox_id)
        if state is None and only_known:
            continue
        total += ledger.settle(lease.lease_id, now, end=state is False)
    return total

