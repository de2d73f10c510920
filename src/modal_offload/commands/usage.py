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
