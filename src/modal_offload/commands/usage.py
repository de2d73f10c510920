"""`modal-offload usage show|reset|add`."""

from __future__ import annotations

import json
import math

from .. import config, workspace
from ..budget import Ledger
from ..errors import BadInput
from ..ui import notice


def _budget() -> float:
    ws = workspace.find()
    return config.load(ws.root if ws else None).max_min_per_day


def show(as_json: bool = False) -> int:
    budget = _budget()
    ledger = Ledger()
    snap = ledger.snapshot()
    days = snap.last_days(7)
    if as_json:
        print(json.dumps({
            "file": str(ledger.path), "day": snap.today, "used_min": round(snap.used_min, 4),
            "used_usd": round(snap.used_usd, 6),
            "budget_min": budget, "remaining_min": round(snap.remaining(budget), 4),
            "outstanding_min": round(snap.outstanding_min, 4),
            "live_sandboxes": [{"sandbox_id": lease.sandbox_id, "session": lease.name,
                                "source": lease.source, "workspace": lease.workspace,
                                "deadline": lease.deadline,
                                "charged_min": round(lease.charged_s / 60, 4),
                                "outstanding_min": round(lease.outstanding_s / 60, 4)}
                               for lease in snap.leases],
            "last_7_days": [{"day": d.day, "used_min": round(d.used_min, 4),
                             "usd": round(d.usd, 6), "by_source": d.by_source,
                             "by_source_usd": d.by_source_usd,
                             "by_workspace": d.by_workspace} for d in days],
        }, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Remote minutes and dollars ({ledger.path})", show_edge=False)
    table.add_column("day")
    table.add_column("used min", justify="right")
    table.add_column("usd", justify="right")
    table.add_column("by source")
    table.add_column("by workspace")
    for d in days:
        sources = ", ".join(f"{k} {v:.1f} (${d.by_source_usd.get(k, 0.0):.2f})"
                            for k, v in sorted(d.by_source.items()))
        spaces = ", ".join(f"{k} {v.get('min', 0.0):.1f} (${v.get('usd', 0.0):.2f})"
                           for k, v in sorted(d.by_workspace.items()))
        table.add_row(d.day, f"{d.used_min:.2f}", f"{d.usd:.2f}", sources, spaces)
    console = Console()
    console.print(table)
    console.print(f"today {snap.today}: used {snap.used_min:.2f} of {budget:g} min "
                  f"(${snap.used_usd:.2f}), {snap.outstanding_min:.2f} min held by "
                  f"{len(snap.leases)} live sandbox(es), "
                  f"remaining {snap.remaining(budget):.2f} min")
    return 0


def reset() -> int:
    snap, aside = Ledger().reset()
    if aside is not None:
        notice(f"the corrupt ledger was moved to {aside}; starting clean")
    print(f"today's usage reset to 0 ({snap.today})")
    return 0


def add(minutes: str, note: str | None = None) -> int:
    try:
        value = float(minutes)
    except ValueError:
        raise BadInput(f"{minutes!r} is not a number of minutes", "pass e.g. 12.5") from None
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise BadInput(f"refusing to add {minutes} minutes",
                       "minutes must be >= 0; use `usage reset` to start today over")
    snap = Ledger().charge(value, "manual", note=note)
    print(f"added {value:g} min; today {snap.used_min:.2f} min used")
    return 0


def reconcile(days: int = 7, as_json: bool = False) -> int:
    """Our dollars against Modal's billing report, per day and workspace."""
    import datetime as dt

    from .. import reconcile as rec
    from ..backends._base import get_backend
    from ..errors import BackendUnavailable
    from ..meter import settle_all

    if days < 1:
        raise BadInput(f"--days must be at least 1, got {days}", "pass e.g. --days 7")
    backend = get_backend("modal")
    reason = backend.unavailable_reason()
    if reason:
        raise BackendUnavailable(f"cannot read Modal's bill: {reason}")
    from ..backends.modal import billing_report

    ledger = Ledger()
    settle_all(ledger, {})  # live sandboxes' time so far counts on our side too
    snap = ledger.snapshot()
    start, end = rec.window(dt.date.fromisoformat(snap.today), days)
    lines = rec.compare(snap, billing_report(start, end), days)
    if as_json:
        print(json.dumps({"from": start.isoformat(), "to": end.isoformat(), "lines": [
            {"day": line.day, "workspace": line.workspace, "ours_usd": round(line.ours_usd, 6),
             "modal_usd": round(line.theirs_usd, 6),
             "diff_pct": None if line.diff_pct is None or math.isinf(line.diff_pct)
             else round(line.diff_pct, 2)} for line in lines]}, indent=2))
        return 0
    if not lines:
        print(f"nothing billed in the last {days} day(s), by us or by Modal")
        return 0
    print(f"{'day':<11} {'workspace':<10} {'ours $':>10} {'Modal $':>10} {'diff':>8}")
    for line in lines:
        pct = line.diff_pct
        shown = "n/a" if pct is None or math.isinf(pct) else f"{pct:+.1f}%"
        print(f"{line.day:<11} {line.workspace:<10} {line.ours_usd:>10.4f} "
              f"{line.theirs_usd:>10.4f} {shown:>8}")
    return 0
