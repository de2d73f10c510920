"""The ledger's cost of a lease (issue 15), against the cost of one plain charge measured in
the same run (what the per-command meter wrote before leases).

1. A new sandbox's lease: reserve (cap check and write), bind to the sandbox id, end (settle
   and release): three locked read-modify-writes of the ledger.
2. A command in a warm sandbox: what the gateway does around it (attach: one read, which
   finds the lease; the final settle: one write; two reads for the report's figure).
Goal: each under 5 ms per command. The ledger holds 60 days of history and 5 live leases of
other sandboxes, as a busy user's would. p50 of RUNS runs.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path

from _common import p50, report, timed

from modal_offload.budget import Ledger

RUNS = 200
GOAL_MS = 5.0


def _busy_ledger(path: Path) -> Ledger:
    ledger = Ledger(path)
    today = dt.date.today()
    for back in range(60):
        day = today - dt.timedelta(days=back)
        ledger.clock = lambda day=day: dt.datetime.combine(day, dt.time(12)).astimezone()
        ledger.charge(1.0, "exec")
    ledger.clock = lambda: dt.datetime.now().astimezone()
    now = time.time()
    for n in range(5):
        ledger.reserve(lease_id=f"other{n}", name=f"s{n}", source="exec", workspace="w",
                       want_s=60, usd_per_s=0.001, budget_min=1e9, budget_usd=None, now=now)
        ledger.bind(f"other{n}", f"sb-{n}", now)
    return ledger


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = _busy_ledger(Path(tmp) / "usage.json")

        def baseline() -> None:
            ledger.charge(0.01, "exec")

        def new_sandbox() -> None:
            lease = uuid.uuid4().hex
            now = time.time()
            ledger.reserve(lease_id=lease, name="bench", source="exec", workspace="w",
                           want_s=60, usd_per_s=0.001, budget_min=1e9, budget_usd=None,
                           now=now)
            ledger.bind(lease, "sb-bench", now)
            ledger.settle(lease, now + 1, end=True)

        warm = uuid.uuid4().hex
        ledger.reserve(lease_id=warm, name="warm", source="exec", workspace="w", want_s=3600,
                       usd_per_s=0.001, budget_min=1e9, budget_usd=None, now=time.time())

        def warm_command() -> None:
            leases = ledger.snapshot().leases  # attach
            assert any(lease.lease_id == warm for lease in leases)
            ledger.snapshot()  # the report's figure, before
            ledger.settle(warm, time.time())  # the final settle
            ledger.snapshot()  # and after

        base = p50(timed(baseline, RUNS)) * 1000
        lease = p50(timed(new_sandbox, RUNS)) * 1000
        command = p50(timed(warm_command, RUNS)) * 1000
    report("baseline: one charge (the old per-command meter's write)", f"{base:.2f} ms")
    for name, value in (("lease of a new sandbox (reserve+bind+end)", lease),
                        ("a command in a warm sandbox (attach+settle)", command)):
        verdict = "ok" if value < GOAL_MS else f"OVER the {GOAL_MS:g} ms goal"
        report(name, f"{value:.2f} ms = {value / base:.1f}x baseline; {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
