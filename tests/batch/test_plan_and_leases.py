"""The batch's parsers and budget pool, property-tested."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from modal_offload.batch.leases import MIN_LEASE_MIN, LeasePool
from modal_offload.batch.plan import plan
from modal_offload.errors import BadInput

VALUES = st.text(alphabet=st.characters(exclude_characters="\0", exclude_categories=["Cs"]))


@given(st.lists(VALUES, min_size=1, max_size=20))
def test_values_map_one_task_each_in_order(values: list[str]) -> None:
    tasks = plan(None, None, values)
    assert [t.input for t in tasks] == values
    assert [t.env()["MODAL_OFFLOAD_TASK_ID"] for t in tasks] == [str(k) for k in
                                                                 range(len(values))]
    assert {t.env()["MODAL_OFFLOAD_TASK_COUNT"] for t in tasks} == {str(len(values))}


@settings(max_examples=50)
@given(st.lists(st.text(alphabet=st.characters(exclude_characters="\0\r\n\x0b\x0c\x1c\x1d"
                                                                  "\x1e\x85\u2028\u2029",
                                               exclude_categories=["Cs"])),
                min_size=1, max_size=10))
def test_a_file_maps_its_non_empty_lines(tmp_path_factory: pytest.TempPathFactory,
                                         lines: list[str]) -> None:
    path = tmp_path_factory.mktemp("map") / "inputs.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = [line for line in lines if line.strip()]
    if not expected:
        with pytest.raises(BadInput):
            plan(None, str(path), None)
        return
    assert [t.input for t in plan(None, str(path), None)] == expected


def test_exactly_one_source_and_sane_counts(tmp_path: Path) -> None:
    for args in ((None, None, None), (2, None, ["a"]), (0, None, None), (None, None, ["a\0"]),
                 (None, str(tmp_path / "missing"), None)):
        with pytest.raises(BadInput):
            plan(*args)
    assert [t.input for t in plan(3, None, None)] == [None, None, None]
    assert "MODAL_OFFLOAD_TASK_INPUT" not in plan(1, None, None)[0].env()


@settings(max_examples=60, deadline=None)
@given(total=st.floats(0, 10), per=st.floats(MIN_LEASE_MIN, 5), workers=st.integers(1, 6),
       seed=st.integers(0, 1000))
def test_live_leases_never_exceed_the_pool(total: float, per: float, workers: int,
                                           seed: int) -> None:
    pool = LeasePool(total, per)
    live: list[float] = []
    lock = threading.Lock()
    spent: list[float] = []
    cancelled = threading.Event()
    rng = random.Random(seed)
    uses = [rng.random() for _ in range(workers * 3)]

    def worker() -> None:
        while True:
            with lock:
                if not uses:
                    return
                use = uses.pop()
            grant = pool.acquire(cancelled)
            if grant is None:
                return
            with lock:
                live.append(grant)
                assert sum(live) <= total + 1e-9
                spent.append(grant * use)
            with lock:
                live.remove(grant)
            pool.release(grant, grant * use)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(spent) <= total + 1e-9
    assert pool.held == 0


def test_a_waiting_task_gets_the_rest_once_nothing_is_held() -> None:
    pool = LeasePool(1.0, 0.75)
    never = threading.Event()
    first = pool.acquire(never)
    assert first == 0.75
    got: list[float | None] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(never)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # 0.25 left while a lease is held: it waits
    pool.release(0.75, 0.7)  # 0.05 unused comes back: 0.3 free, none held
    waiter.join(5)
    assert got == [pytest.approx(0.3)]
    pool.release(0.3, 0.3)
    assert pool.acquire(never) is None  # nothing left


@given(total=st.floats(0.1, 1000), parallel=st.integers(1, 64))
def test_an_equal_share_fits_parallel_times(total: float, parallel: int) -> None:
    """Rounding must not make the last of P equal shares wait (it would never start)."""
    assume(total / parallel >= MIN_LEASE_MIN)
    pool = LeasePool(total, total / parallel)
    grants = [pool.try_acquire() for _ in range(parallel)]
    assert None not in grants and pool.free_min >= 0
    assert sum(g for g in grants if g) <= total + 1e-9


def test_no_budget_at_all_never_waits() -> None:
    never = threading.Event()
    assert LeasePool(0.0, 0.0).acquire(never) is None
    assert LeasePool(MIN_LEASE_MIN / 2, 1.0).acquire(never) is None
