"""Our ledger against the provider's own bill (`usage reconcile`, issue 15).

Ours: the ledger's dollars per local day and workspace (leases settled up to now first, so
live sandboxes count). Theirs: Modal's hourly billing report for sandboxes tagged
`modal-offload=1`, summed per local day (of the hour's start) and `workspace` tag. Known
limits: a charge lands on the day it is settled, so a sandbox living across midnight may
shift between two days; the report covers whole hours only, so the window ends at the next
full hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from .budget import Snapshot

Row = tuple[dt.datetime, float, dict[str, str]]


@dataclass(frozen=True)
class Line:
    day: str
    workspace: str
    ours_usd: float
    theirs_usd: float

    @property
    def diff_pct(self) -> float | None:
        """(ours - theirs) / theirs in percent; None when the provider billed nothing."""
        if self.theirs_usd == 0:
            return None if self.ours_usd == 0 else float("inf")
        return (self.ours_usd - self.theirs_usd) / self.theirs_usd * 100


def window(today: dt.date, days: int) -> tuple[dt.datetime, dt.datetime]:
    """UTC [start, end): local midnight `days - 1` days ago up to the next full hour."""
    start_local = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time())
    start = start_local.astimezone().astimezone(dt.timezone.utc)
    now = dt.datetime.now(dt.timezone.utc)
    end = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return start, end


def compare(snapshot: Snapshot, rows: Iterable[Row], days: int) -> list[Line]:
    today = dt.date.fromisoformat(snapshot.today)
    wanted = {(today - dt.timedelta(days=back)).isoformat() for back in range(days)}
    theirs: dict[tuple[str, str], float] = {}
    for start, cost, tags in rows:
        day = start.astimezone().date().isoformat()  # the local day, like the ledger's
        key = (day, tags.get("workspace", "?"))
        theirs[key] = theirs.get(key, 0.0) + cost
    ours: dict[tuple[str, str], float] = {}
    for day, usage in snapshot.history.items():
        if day in wanted:
            for ws, totals in usage.by_workspace.items():
                ours[(day, ws)] = float(totals.get("usd", 0.0))
    keys = sorted(k for k in set(ours) | set(theirs) if k[0] in wanted)
    return [Line(day, ws, ours.get((day, ws), 0.0), theirs.get((day, ws), 0.0))
            for day, ws in keys]
