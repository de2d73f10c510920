"""Issue #13, class 9: charges a failing disk kept out of the ledger are never lost and
never charged twice (the full-disk story end to end is tests/test_full_disk.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modal_offload import pending
from modal_offload.budget import Ledger
from modal_offload.pending import ChargePending, PendingCharges


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=st.lists(st.floats(min_value=0.001, max_value=500), min_size=1, max_size=5))
def test_deferred_minutes_are_charged_exactly_once(tmp_path_factory: pytest.TempPathFactory,
                                                   minutes: list[float]) -> None:
    base = tmp_path_factory.mktemp("pending")
    ledger = Ledger(base / "usage.json")
    pending = PendingCharges(ledger.path)
    for m in minutes:
        assert pending.add(m, "exec").startswith("in ")
    assert math.isclose(pending.total(), sum(minutes))
    ledger.settle_pending()
    ledger.settle_pending()  # nothing left: never charged twice
    assert math.isclose(ledger.snapshot().used_min, sum(minutes))
    assert pending.total() == 0


def test_no_room_anywhere_keeps_them_in_memory_and_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # Neither the runtime folder nor the ledger's folder can be written (a file is in
    # the way): the minutes stay in this process's memory, and remote runs refuse.
    monkeypatch.setenv("MODAL_OFFLOAD_RUNTIME_DIR", str(blocker / "run"))
    broken = Ledger(blocker / "usage.json")
    where = PendingCharges(broken.path).add(2.5, "exec")
    assert "memory" in where and "usage add 2.50" in where
    with pytest.raises(ChargePending, match=r"2\.50 min of remote time are not yet written"):
        broken.settle_pending()
    # The same ledger path becomes writable again (the blocker is gone): written once.
    blocker.unlink()
    blocker.mkdir()
    broken.settle_pending()
    assert broken.snapshot().used_min == 2.5
    assert pending._MEMORY.get(str(broken.path), {}) == {}


