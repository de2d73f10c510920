"""The batch's share of the daily budget, leased to sandboxes so the cap holds.

At the start the batch takes what the ledger has left. Each sandbox holds a lease of
`per_task_min` for its whole metered life (open, sync, run, sync back): its command is stopped
when the lease runs out, and the unused part returns to the pool at the end. The sum of
live leases never exceeds the pool, so N sandboxes at once cannot spend more than the cap
(each one's own timeout is computed from the ledger, which alone would let each of N
sandboxes spend the whole remainder). A task that cannot get a whole lease waits while others
hold some; when none is held and less than a lease is left, it gets the rest (if at least
MIN_LEASE_MIN) or no lease at all.
"""

from __future__ import annotations

import threading

MIN_LEASE_MIN = 2.0 / 60.0  # a sandbox needs seconds just to start and sync
EPSILON_MIN = 1e-9


class LeasePool:
    def __init__(self, total_min: float, per_task_min: float) -> None:
        self.free_min = max(0.0, total_min)
        self.per_task_min = per_task_min
        self.held = 0
        self._cond = threading.Condition()

    def acquire(self, cancelled: threading.Event) -> float | None:
        """Minutes granted, or None: the budget cannot cover this task (or it was cancelled)."""
        with self._cond:
            while not cancelled.is_set():
                grant = self._grant()
                if grant != 0.0:
                    return grant
                self._cond.wait(0.2)  # also wakes for a cancel
            return None

    def try_acquire(self) -> float | None:
        """As `acquire`, but None instead of waiting."""
        with self._cond:
            grant = self._grant()
            return grant or None

    def _grant(self) -> float | None:
        """A lease, None when none can ever come, 0.0 when one may after a release."""
        if self.held == 0 and self.free_min < MIN_LEASE_MIN:
            return None
        # Within rounding: an equal share of the pool times P must fit P times.
        if (self.per_task_min >= MIN_LEASE_MIN
                and self.free_min + EPSILON_MIN >= self.per_task_min):
            grant = min(self.per_task_min, self.free_min)
        elif self.held == 0:
            grant = self.free_min
        else:
            return 0.0
        self.free_min -= grant
        self.held += 1
        return grant

    def release(self, granted_min: float, used_min: float) -> None:
        """Give back what the sandbox did not use (never more than it was granted)."""
        with self._cond:
            self.free_min += max(0.0, granted_min - max(0.0, used_min))
            self.held -= 1
            self._cond.notify_all()
