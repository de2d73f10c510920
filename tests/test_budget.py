"""The ledger: locking, atomicity, corruption, day rollover, arithmetic."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modal_offload.budget import Ledger
from modal_offload.errors import CorruptLedger, OffloadError
from tests.helpers import cli

TZ = dt.timezone.utc


def clock_at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T12:00:00+00:00")


def test_missing_file_reads_as_zero_and_first_charge_creates_it(tmp_home: Path) -> None:
    ledger = Ledger()
    assert ledger.snapshot().used_min == 0
    ledger.charge(2.5, "heavy")
    data = json.loads((tmp_home / ".primary_compute_modal_usage.json").read_text())
    assert data["used_min"] == 2.5 and data["version"] == 3
    assert data["history"][data["day"]]["by_source"] == {"heavy": 2.5}


def test_env_var_chooses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere.json"
    monkeypatch.setenv("PRIMARY_MODAL_USAGE_FILE", str(target))
    Ledger().charge(1, "exec")
    assert json.loads(target.read_text())["used_min"] == 1


def test_original_format_is_read_and_upgraded(tmp_home: Path) -> None:
    path = tmp_home / ".primary_compute_modal_usage.json"
    today = dt.date.today().isoformat()
    path.write_text(json.dumps({"day": today, "used_min": 42.0}))
    ledger = Ledger()
    assert ledger.snapshot().used_min == 42.0
    ledger.charge(1.0, "heavy")
    data = json.loads(path.read_text())
    assert data["used_min"] == 43.0 and data["day"] == today and data["version"] == 3


@pytest.mark.parametrize("content", ["", "{", "[]", '{"day": "yesterday", "used_min": 1}',
                                     '{"day": "2026-01-01", "used_min": -3}',
                                     '{"day": "2026-01-01", "used_min": "lots"}',
                                     '{"day": "2026-01-01", "used_min": 1, "version": 99}'])
def test_corrupt_file_is_never_read_as_zero(tmp_home: Path, content: str) -> None:
    path = tmp_home / ".primary_compute_modal_usage.json"
    path.write_text(content)
    with pytest.raises(CorruptLedger) as info:
        Ledger().snapshot()
    assert str(path) in info.value.one_line() and "usage reset" in info.value.one_line()
    with pytest.raises(CorruptLedger):
        Ledger().charge(1, "heavy")
    assert path.read_text() == content  # untouched


def test_reset_moves_corrupt_file_aside(tmp_home: Path) -> None:
    path = tmp_home / ".primary_compute_modal_usage.json"
    path.write_text("garbage")
    snap, aside = Ledger().reset()
    assert aside is not None and aside.read_text() == "garbage"
    assert aside.name.startswith(".primary_compute_modal_usage.json.corrupt-")
    assert snap.used_min == 0 and json.loads(path.read_text())["used_min"] == 0


def test_reset_of_healthy_file_keeps_what_was_discarded(tmp_home: Path) -> None:
    ledger = Ledger()
    ledger.charge(7, "heavy")
    snap, aside = ledger.reset()
    assert aside is None and snap.used_min == 0
    data = json.loads(ledger.path.read_text())
    assert data["history"][snap.today]["resets"][0]["discarded_min"] == 7


def test_day_rollover_starts_at_zero_and_keeps_history(tmp_home: Path) -> None:
    day1 = Ledger(clock=lambda: clock_at("2026-11-24"))
    day1.charge(30, "heavy")
    day2 = Ledger(clock=lambda: clock_at("2026-11-25"))
    snap = day2.snapshot()
    assert snap.used_min == 0
    assert snap.history["2026-11-24"].used_min == 30
    day2.charge(5, "exec")
    data = json.loads(day2.path.read_text())
    assert data["day"] == "2026-11-25" and data["used_min"] == 5
    assert data["history"]["2026-11-24"]["used_min"] == 30
    week = day2.snapshot().last_days(7)
    assert [d.day for d in week][:2] == ["2026-11-25", "2026-11-24"]
    assert week[1].used_min == 30 and len(week) == 7


def test_negative_or_nan_charge_refused(tmp_home: Path) -> None:
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(OffloadError):
            Ledger().charge(bad, "manual")


_CHARGER = """
import sys
from modal_offload.budget import Ledger
Ledger().charge(0.5, "exec")
"""


def test_100_concurrent_processes_lose_nothing(tmp_home: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _CHARGER]) for _ in range(100)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    data = json.loads((tmp_home / ".primary_compute_modal_usage.json").read_text())
    assert data["used_min"] == pytest.approx(50.0)
    assert not list(tmp_home.glob(".primary_compute_modal_usage.json.*.tmp"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), max_size=12))
def test_charges_add_up_exactly(tmp_path_factory: pytest.TempPathFactory,
                                charges: list[float]) -> None:
    path = tmp_path_factory.mktemp("ledger") / "usage.json"
    ledger = Ledger(path)
    for c in charges:
        ledger.charge(c, "heavy")
    snap = ledger.snapshot()
    assert snap.used_min == pytest.approx(math.fsum(charges), rel=1e-9, abs=1e-9)
    assert snap.remaining(180) == pytest.approx(max(0.0, 180 - math.fsum(charges)), abs=1e-6)
    today = snap.last_days(1)[0]
    assert today.by_source.get("heavy", 0) == pytest.approx(snap.used_min)


def test_cli_usage_show_add_reset(tmp_home: Path) -> None:
    out = cli("usage", "add", "12.5", "--note", "notebook")
    assert out.returncode == 0, out.stderr
    shown = json.loads(cli("usage", "show", "--json").stdout)
    assert shown["used_min"] == 12.5 and shown["budget_min"] == 180
    assert shown["remaining_min"] == 167.5 and len(shown["last_7_days"]) == 7
    assert cli("usage", "reset").returncode == 0
    assert json.loads(cli("usage", "show", "--json").stdout)["used_min"] == 0
    table = cli("usage", "show")
    assert table.returncode == 0 and b"remaining" in table.stdout


@pytest.mark.parametrize("arg", ["-3", "nan", "abc", "inf"])
def test_cli_usage_add_refuses_bad_minutes(tmp_home: Path, arg: str) -> None:
    out = cli("usage", "add", "--", arg)
    assert out.returncode == 2
    assert out.stderr.count(b"\n") == 1 and b"Traceback" not in out.stderr


@pytest.mark.parametrize("value", ["-5", "NaN", "lots", "inf"])
def test_cli_refuses_bad_budget(tmp_home: Path, value: str) -> None:
    out = cli("usage", "show", env={"PRIMARY_MODAL_MAX_MIN_PER_DAY": value})
    assert out.returncode == 2
    assert b"PRIMARY_MODAL_MAX_MIN_PER_DAY" in out.stderr and b"Traceback" not in out.stderr


def test_cli_corrupt_ledger_one_line_then_reset(tmp_home: Path) -> None:
    path = tmp_home / ".primary_compute_modal_usage.json"
    path.write_text("{broken")
    out = cli("usage", "show")
    assert out.returncode == 5 and out.stderr.count(b"\n") == 1
    assert str(path).encode() in out.stderr
    heavy = cli("heavy", "--payload", '{"iterations":10}')
    assert heavy.returncode == 5  # auto never runs with an unknown amount of budget left
    fixed = cli("usage", "reset")
    assert fixed.returncode == 0 and b"corrupt-" in fixed.stderr
    assert cli("usage", "show").returncode == 0


def test_refund_never_goes_below_zero(tmp_home: Path) -> None:
    ledger = Ledger()
    ledger.charge(1.0, "exec")
    assert ledger.refund(5.0, "exec").used_min == 0
    assert ledger.refund(1.0, "heavy").used_min == 0
