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
            "budget_min": budget, "remaining_min": round(snap.remaining(budget), 4),
            "last_7_days": [{"day": d.day, "used_min": round(d.used_min, 4),
                             "by_source": d.by_source} for d in days],
        }, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Remote minutes ({ledger.path})", show_edge=False)
    table.add_column("day")
    table.add_column("used min", justify="right")
    table.add_column("by source")
    for d in days:
        sources = ", ".join(f"{k} {v:.1f}" for k, v in sorted(d.by_source.items()))
        table.add_row(d.day, f"{d.used_min:.2f}", sources)
    console = Console()
    console.print(table)
    console.print(f"today {snap.today}: used {snap.used_min:.2f} of {budget:g} min, "
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
