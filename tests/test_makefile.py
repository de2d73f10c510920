"""The original toolkit's Makefile targets are thin doors into the CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(
    not (REPO / ".venv" / ".installed").exists()
    or (REPO / ".venv" / ".installed").stat().st_mtime < (REPO / "pyproject.toml").stat().st_mtime,
    reason="needs the Makefile's own .venv, up to date (`make test` creates it)")


def make(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["make", "-s", "-C", str(REPO), *args], env=dict(os.environ),
                          capture_output=True, timeout=120)


def test_heavy_local_and_usage_targets(tmp_home: Path) -> None:
    out = make("heavy-local", 'PAYLOAD={"iterations":2000000,"workers":2}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["checksum"] == 3049778897579708928
    auto = make("heavy", 'PAYLOAD={"iterations":1000}')
    assert auto.returncode == 0 and b"running locally" in auto.stderr
    assert make("usage-show").returncode == 0
    assert make("usage-reset").returncode == 0
    assert json.loads((tmp_home / ".primary_compute_modal_usage.json").read_text())["used_min"] == 0


def test_bad_payload_through_make_is_one_line(tmp_home: Path) -> None:
    out = make("heavy-local", "PAYLOAD={broken")
    assert out.returncode != 0 and b"not valid JSON" in out.stderr
    assert b"Traceback" not in out.stderr
