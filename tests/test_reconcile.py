"""`usage reconcile`'s comparison: per local day and workspace, ours against the provider's."""

from __future__ import annotations

import datetime as dt

import pytest

from modal_offload.budget import DayUsage, Snapshot
from modal_offload.reconcile import compare, window


def _snap(today: str, by_ws: dict[str, float]) -> Snapshot:
    day = DayUsage(today, 1.0, {}, sum(by_ws.values()), {},
                   {ws: {"min": 1.0, "usd": usd} for ws, usd in by_ws.items()})
    return Snapshot(today=today, used_min=1.0, history={today: day})


def test_rows_are_summed_per_local_day_and_workspace() -> None:
    today = dt.date.today()
    noon = dt.datetime.combine(today, dt.time(12)).astimezone().astimezone(dt.timezone.utc)
    rows = [(noon, 0.10, {"workspace": "a", "modal-offload": "1"}),
            (noon + dt.timedelta(hours=1), 0.10, {"workspace": "a", "modal-offload": "1"}),
            (noon, 0.05, {"workspace": "b", "modal-offload": "1"})]
    lines = compare(_snap(today.isoformat(), {"a": 0.21}), rows, days=1)
    by_ws = {line.workspace: line for line in lines}
    assert by_ws["a"].theirs_usd == pytest.approx(0.20)
    assert by_ws["a"].diff_pct == pytest.approx(5.0)
    assert by_ws["b"].ours_usd == 0 and by_ws["b"].diff_pct == pytest.approx(-100.0)


def test_days_outside_the_window_are_left_out() -> None:
    today = dt.date.today()
    old = dt.datetime.combine(today - dt.timedelta(days=3), dt.time(12)).astimezone()
    lines = compare(_snap(today.isoformat(), {}), [(old, 1.0, {"workspace": "a"})], days=2)
    assert lines == []


def test_the_window_ends_at_the_next_full_hour() -> None:
    start, end = window(dt.date.today(), 2)
    now = dt.datetime.now(dt.timezone.utc)
    assert end > now and end - now <= dt.timedelta(hours=1)
    assert (end.minute, end.second) == (0, 0)
    assert now - start >= dt.timedelta(days=1)
