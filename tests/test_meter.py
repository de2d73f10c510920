"""The sandbox meter and the ledger's leases (issue 15).

A sandbox is charged once for its life whoever settles it; live sandboxes' leases together
never exceed the budget; a crash between two steps never lifts the cap.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modal_offload.backends._base import SessionSpec
from modal_offload.backends.local import LocalBackend
from modal_offload.budget import Ledger, NoLease
from modal_offload.errors import BudgetExhausted
from modal_offload.meter import Budget, SandboxMeter


def _meter(ledger: Ledger, minutes: float, usd: float | None = None,
           workspace: str = "ws1", rate: float = 0.001) -> SandboxMeter:
    return SandboxMeter(ledger, Budget(minutes, usd), source="exec", workspace=workspace,
                        usd_per_s=rate, interval=0.05)


def test_two_commands_in_one_sandbox_are_charged_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.json")
    meter = _meter(ledger, 60)
    backend = LocalBackend(tmp_path / "sb")
    session = backend.open_session(SessionSpec(name="s", workspace=tmp_path,
                                               timeout_seconds=600, grant=meter.grant))
    lease = meter.attach(session)
    started = time.time()

    def command() -> None:
        with _meter(ledger, 60).running(lease):
            time.sleep(0.6)

    threads = [threading.Thread(target=command) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - session.created_at
    used_s = ledger.snapshot().used_min * 60
    # Both commands overlapped for ~0.6 s: the sandbox lived ~0.6 s, charged once.
    assert time.time() - started < 1.2
    assert 0.55 <= used_s <= elapsed + 0.01
    day = ledger.snapshot().history[ledger.snapshot().today]
    assert day.by_workspace["ws1"]["min"] == pytest.approx(used_s / 60)
    assert day.usd == pytest.approx(used_s * 0.001)


def _settle_many(path: str, lease_id: str, until: float, count: int) -> None:
    ledger = Ledger(Path(path))
    for step in range(count):
        ledger.settle(lease_id, until - (count - step) * 0.5)
    ledger.settle(lease_id, until)


def test_concurrent_processes_settling_one_sandbox_charge_it_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.json")
    now = time.time()
    ledger.reserve(lease_id="L", name="s", source="exec", workspace="w", want_s=600,
                   usd_per_s=0.0, budget_min=60, budget_usd=None, now=now)
    ledger.bind("L", "sb-1", now)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_settle_many, args=(str(ledger.path), "L", now + 120, 8))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert ledger.snapshot().used_min == pytest.approx(2.0)


def test_three_workspaces_at_once_share_ten_minutes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.json")
    ledger.charge(170, "exec")  # 10 of 180 minutes left
    granted: list[int] = []
    errors: list[BudgetExhausted] = []

    def start(ws: str) -> None:
        try:
            granted.append(_meter(ledger, 180, workspace=ws).grant(f"s-{ws}", 3600))
        except BudgetExhausted as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) <= 600
    assert granted == [600] and len(errors) == 2  # the first takes all; the others refuse
    assert "held by 1 live sandbox" in errors[0].message


def test_ending_a_sandbox_releases_what_it_did_not_use(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.json")
    meter = _meter(ledger, 10)
    assert meter.grant("a", 3600) == 600
    with pytest.raises(BudgetExhausted, match="no budget for a new sandbox"):
        _meter(ledger, 10).grant("b", 3600)
    lease = meter.reserved
    assert lease is not None
    now = time.time()
    ledger.bind(lease, "sb-a", now)
    ledger.settle(lease, now + 60, end=True)
    snap = ledger.snapshot()
    assert snap.used_min == pytest.approx(1.0) and snap.leases == ()
    assert _meter(ledger, 10).grant("b", 3600) == 540


def test_dollar_cap_limits_the_lease(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "usage.json")
    # 60 minutes allowed, but $0.30 at $0.001/s is 300 s.
    assert _meter(ledger, 60, usd=0.30).grant("gpu", 3600) == 300


def test_a_version_2_file_upgrades_with_no_leases(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    day = time.strftime("%Y-%m-%d")
    path.write_text(json.dumps({"version": 2, "day": day, "used_min": 3.0,
                                "history": {day: {"used_min": 3.0, "by_source": {"exec": 3}}}}))
    ledger = Ledger(path)
    assert ledger.snapshot().leases == ()
    ledger.charge(1.0, "manual")
    data = json.loads(path.read_text())
    assert data["version"] == 3 and data["leases"] == {} and data["used_min"] == 4.0


def test_a_malformed_lease_is_a_corrupt_ledger(tmp_path: Path) -> None:
    from modal_offload.errors import CorruptLedger

    path = tmp_path / "usage.json"
    day = time.strftime("%Y-%m-%d")
    path.write_text(json.dumps({"version": 3, "day": day, "used_min": 0, "history": {},
                                "leases": {"x": {"name": "s", "deadline": "soon"}}}))
    with pytest.raises(CorruptLedger, match="lease 'x' is malformed"):
        Ledger(path).snapshot()


# Steps a process may take on the ledger; a "crash" is simply never taking the next step.
_op = st.one_of(
    st.tuples(st.just("reserve"), st.integers(1, 1200)),
    st.tuples(st.just("bind"), st.integers(0, 5)),
    st.tuples(st.just("settle"), st.integers(0, 5), st.integers(0, 1500)),
    st.tuples(st.just("end"), st.integers(0, 5), st.integers(0, 1500)),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_op, max_size=25), st.floats(min_value=1, max_value=30))
def test_leases_never_lift_the_cap(tmp_path_factory: pytest.TempPathFactory,
                                   ops: list[tuple[object, ...]], budget: float) -> None:
    path = tmp_path_factory.mktemp("lease") / "usage.json"
    ledger = Ledger(path)
    t0 = 1_000_000.0
    ids: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "reserve":
            lease_id = f"l{len(ids)}"
            try:
                ledger.reserve(lease_id=lease_id, name=lease_id, source="exec", workspace="w",
                               want_s=float(op[1]),  # type: ignore[arg-type]
                               usd_per_s=0.0, budget_min=budget,
                               budget_usd=None, now=t0)
                ids.append(lease_id)
            except NoLease:
                pass
        elif ids:
            lease_id = ids[int(op[1]) % len(ids)]  # type: ignore[call-overload]
            if kind == "bind":
                ledger.bind(lease_id, f"sb-{lease_id}", t0)
            else:
                ledger.settle(lease_id, t0 + float(op[2]),  # type: ignore[arg-type]
                              end=kind == "end")
        snap = ledger.snapshot()
        # The cap: what was charged plus what live sandboxes may still cost.
        assert snap.used_min + snap.outstanding_min <= budget + 1e-9
        for lease in snap.leases:
            assert lease.created <= lease.charged_until <= lease.deadline


def test_no_lease_when_the_ledger_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    meter = _meter(Ledger(blocker / "usage.json"), 60)
    with pytest.raises(BudgetExhausted, match="cannot be written"):
        meter.grant("s", 600)


def test_an_injected_ledger_gets_every_charge(tmp_path: Path, tmp_home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """run_heavy(ledger=...): the sandbox's whole life, idle gaps included, goes to that
    ledger; the default one is never written (issue 15)."""
    from modal_offload.heavy import run_heavy
    from tests.helpers import make_workspace

    ws = make_workspace(tmp_path / "ws", 'heavy_entry = "slow:work"\n',
                        {"slow.py": "def work(payload):\n    return {'ok': 1}\n"})
    monkeypatch.chdir(ws)
    monkeypatch.setenv("MODAL_OFFLOAD_BACKEND", "local")
    custom = Ledger(tmp_path / "custom.json")
    for _ in range(2):  # the second one reuses the sandbox: the idle gap is charged too
        result = run_heavy({}, force_mode="modal", ledger=custom, notify=lambda _m: None)
        assert result["execution"] == "remote-local"
    snap = custom.snapshot()
    [lease] = snap.leases
    assert snap.used_min * 60 == pytest.approx(lease.charged_s)
    assert lease.charged_until >= lease.created
    assert not (tmp_home / ".primary_compute_modal_usage.json").exists()


def _grant_and_settle(path: str, tag: str, want_s: int, untils: list[int]) -> float:
    """In another process: reserve a lease (the cap decides), bind it, settle it to each
    `until` in turn (out of order on purpose) and end it. Returns the seconds granted."""
    ledger = Ledger(Path(path))
    t0 = 1_000_000.0
    try:
        granted = ledger.reserve(lease_id=tag, name=tag, source="exec", workspace="w",
                                 want_s=want_s, usd_per_s=0.0, budget_min=10.0,
                                 budget_usd=None, now=t0)
    except NoLease:
        return 0.0
    ledger.bind(tag, f"sb-{tag}", t0)
    for until in untils:
        ledger.settle(tag, t0 + until)
    ledger.settle(tag, t0 + max(untils, default=0), end=True)
    return granted


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 900), st.lists(st.integers(0, 900), max_size=4)),
                min_size=1, max_size=5))
def test_concurrent_processes_never_lift_the_cap_nor_charge_twice(
        tmp_path_factory: pytest.TempPathFactory, pool: ProcessPoolExecutor,
        plans: list[tuple[int, list[int]]]) -> None:
    path = tmp_path_factory.mktemp("race") / "usage.json"
    jobs = [pool.submit(_grant_and_settle, str(path), f"l{n}", want, untils)
            for n, (want, untils) in enumerate(plans)]
    granted = [job.result(timeout=120) for job in jobs]
    snap = Ledger(path).snapshot()
    # 10 minutes among however many raced for them (a lease ended early gave back the rest)
    assert all(g <= 600 for g in granted) and snap.used_min * 60 <= 600 + 1e-6
    expected = sum(min(max(untils, default=0), g)
                   for (_, untils), g in zip(plans, granted, strict=True) if g)
    assert snap.used_min * 60 == pytest.approx(expected)  # each instant charged once
    assert snap.leases == ()
