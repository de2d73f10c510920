"""Issue #13, class 10: the ledger parser checks every field's type (a wrong type is a
corrupt ledger, exit 5, never a crash or 125), and a version-2 file without today's history
entry keeps its top-level figure. Property tests over hostile files."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modal_offload.budget import Ledger
from modal_offload.errors import CorruptLedger
from tests.helpers import cli, make_workspace

TODAY = "2026-11-30"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def clock() -> dt.datetime:
    return dt.datetime.fromisoformat(f"{TODAY}T12:00:00+00:00")


def valid() -> dict[str, Any]:
    return {"version": 2, "day": TODAY, "used_min": 3.0,
            "history": {TODAY: {"used_min": 3.0, "by_source": {"exec": 2.0, "manual": 1.0},
                                "notes": [{"at": "x", "min": 1.0, "note": "n"}],
                                "resets": [{"at": "x", "discarded_min": 0.5}]},
                        "2026-11-29": {"used_min": 7.0, "by_source": {"heavy": 7.0}}}}


# Where a field can be replaced: (path of keys, values of the right type).
FIELDS: list[tuple[tuple[str, ...], type | tuple[type, ...]]] = [
    (("version",), int), (("day",), str), (("used_min",), (int, float)),
    (("history",), dict), (("history", TODAY), dict), (("history", TODAY, "used_min"),
                                                       (int, float)),
    (("history", TODAY, "by_source"), dict), (("history", TODAY, "by_source", "exec"),
                                              (int, float)),
    (("history", TODAY, "notes"), list), (("history", TODAY, "resets"), list),
    (("history", TODAY, "notes", "0"), dict), (("history", "2026-11-29"), dict),
]


def _set(data: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    node: Any = data
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value


def _operations(ledger: Ledger) -> None:
    before = ledger.snapshot().used_min
    after = ledger.charge(1.5, "exec").used_min
    assert math.isclose(after, before + 1.5)
    ledger.refund(0.5, "exec")
    ledger.reset()


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=JSON)
def test_a_wrong_type_anywhere_is_a_corrupt_ledger(tmp_path: Path, field: tuple[
        tuple[str, ...], type | tuple[type, ...]], value: object) -> None:
    path, right = field
    wrong = isinstance(value, bool) or not isinstance(value, right)
    data = valid()
    _set(data, path, value)
    target = tmp_path / "usage.json"
    text = json.dumps(data)
    target.write_text(text)
    ledger = Ledger(target, clock=clock)
    if wrong:
        with pytest.raises(CorruptLedger):
            ledger.snapshot()
        with pytest.raises(CorruptLedger):
            ledger.charge(1.0, "exec")
        assert target.read_text() == text  # never rewritten, never taken as zero
    else:  # the right type with any value: works, or a corrupt ledger; nothing else
        with contextlib.suppress(CorruptLedger):
            _operations(ledger)


@SETTINGS
@given(content=JSON)
def test_any_json_is_a_ledger_or_a_corrupt_one(tmp_path: Path, content: object) -> None:
    target = tmp_path / "usage.json"
    target.write_text(json.dumps(content))
    with contextlib.suppress(CorruptLedger):
        _operations(Ledger(target, clock=clock))


@SETTINGS
@given(top=st.floats(min_value=0, max_value=1e6),
       other=st.dictionaries(st.sampled_from(["2026-11-28", "2026-11-29"]),
                             st.floats(min_value=0, max_value=1e3), max_size=2))
def test_a_v2_file_without_todays_entry_keeps_its_figure(tmp_path: Path, top: float,
                                                         other: dict[str, float]) -> None:
    target = tmp_path / "usage.json"
    target.write_text(json.dumps({
        "version": 2, "day": TODAY, "used_min": top,
        "history": {day: {"used_min": m, "by_source": {}} for day, m in other.items()}}))
    ledger = Ledger(target, clock=clock)
    assert ledger.snapshot().used_min == top  # never lifted to 0
    assert math.isclose(ledger.charge(1.0, "exec").used_min, top + 1.0)
    assert math.isclose(json.loads(target.read_text())["used_min"], top + 1.0)


def test_a_top_level_figure_above_its_entry_counts(tmp_path: Path) -> None:
    """An older tool that rewrote only `used_min` must not lose its charge either."""
    data = valid()
    data["used_min"] = 50.0
    target = tmp_path / "usage.json"
    target.write_text(json.dumps(data))
    assert Ledger(target, clock=clock).snapshot().used_min == 50.0


@pytest.mark.parametrize("host", ["0", "1"])
def test_exec_and_usage_say_corrupt_with_exit_5(tmp_home: Path, tmp_path: Path,
                                                host: str) -> None:
    ledger = tmp_home / ".primary_compute_modal_usage.json"
    data = valid()
    data["history"][TODAY]["by_source"] = ["exec", 2.0]
    data["day"] = dt.date.today().isoformat()
    ledger.write_text(json.dumps(data))
    ws = make_workspace(tmp_path / "ws")
    env = {"MODAL_OFFLOAD_BACKEND": "local", "MODAL_OFFLOAD_HOST": host}
    try:
        for out in (cli("exec", "--", "true", cwd=ws, env=env), cli("usage", "show", env=env)):
            assert out.returncode == 5, out.stderr
            assert out.stderr.count(b"\n") == 1 and b"is corrupt" in out.stderr
    finally:
        from tests.host.helpers import stop_hosts

        stop_hosts(tmp_home)
