"""`modal-offload doctor [--json]`: one row per part of the setup, with the fix; exit 1 on fail."""

from __future__ import annotations

import json

from .. import doctor_checks
from ..doctor_checks import FAIL, OK, WARN

_STYLE = {OK: "green", WARN: "yellow", FAIL: "red bold"}


def run(as_json: bool = False) -> int:
    rows = doctor_checks.run_all(doctor_checks.context())
    failed = any(r.status == FAIL for r in rows)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [r.as_dict() for r in rows]}, indent=2))
        return 1 if failed else 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="modal-offload doctor", show_edge=False)
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.check, f"[{_STYLE[r.status]}]{r.status}[/]", r.detail, r.fix)
    Console().print(table)
    return 1 if failed else 0
