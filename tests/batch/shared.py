"""Workspaces the batch tests share: the heavy demo split in ranges, a pytest project."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers import REPO, make_workspace

# The original demo's checksum for {"iterations":24000000,"workers":6} (testing/demo_reference.py).
CHECKSUM = 3427908807260612608
ITERATIONS, WORKERS = 24_000_000, 6

# Task k of n sums the k-th slice of every worker range: per range, the slices' sums add up
# (mod 2**64) to the range's sum, and the ranges' sums XOR to the checksum.
SLICE = f"""
import json, os
from primary_compute import _range_checksum, _ranges
k, n = int(os.environ["MODAL_OFFLOAD_TASK_ID"]), int(os.environ["MODAL_OFFLOAD_TASK_COUNT"])
parts = []
for start, stop in _ranges({ITERATIONS}, {WORKERS}):
    a, b = _ranges(stop - start, n)[k]
    parts.append(_range_checksum(start + a, start + b, 17))
print(json.dumps(parts))
"""


def demo_workspace(root: Path, config: str = "") -> Path:
    return make_workspace(root, config, {
        "primary_compute.py": (REPO / "primary_compute.py").read_text(),
        "slice.py": SLICE})


def combine(outputs: list[str]) -> int:
    """The checksum from every task's per-range sums."""
    per_task = [json.loads(text) for text in outputs]
    checksum = 0
    for r in range(WORKERS):
        checksum ^= sum(parts[r] for parts in per_task) & ((1 << 64) - 1)
    return checksum


def batch_dir(ws: Path) -> Path:
    [only] = list((ws / ".modal-offload" / "batch").iterdir())
    return only


def task_stdout(ws: Path, count: int) -> list[str]:
    where = batch_dir(ws)
    return [(where / str(k) / "stdout").read_text() for k in range(count)]


TESTS = "\n".join(f"def test_{k}():\n    assert {k} % 7 != 6\n" for k in range(20))
# Shard k of n runs the tests whose index is k mod n (a conftest, no plugin needed).
SHARD_CONFTEST = """
import os
def pytest_collection_modifyitems(config, items):
    n = int(os.environ.get("MODAL_OFFLOAD_TASK_COUNT", "1"))
    k = int(os.environ.get("MODAL_OFFLOAD_TASK_ID", "0"))
    items[:] = [item for i, item in enumerate(items) if i % n == k]
"""


def pytest_workspace(root: Path, config: str = "") -> Path:
    return make_workspace(root, config, {"tests/test_many.py": TESTS,
                                         "tests/conftest.py": SHARD_CONFTEST})


def passed(output: str) -> int:
    found = re.search(r"(\d+) passed", output)
    return int(found.group(1)) if found else 0
