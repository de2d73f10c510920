"""`modal-offload doctor`: rows, exit code, speed, and extensibility."""

from __future__ import annotations

import json
import shlex
import shutil
import time
from pathlib import Path

from modal_offload import doctor_checks
from modal_offload.doctor_checks import Context, Row
from tests.helpers import cli

from .conftest import install_shims, shell_env


def _rows(out: bytes) -> dict[str, dict[str, str]]:
    return {r["check"]: r for r in json.loads(out)["checks"]}


def test_doctor_fails_until_set_up_then_passes(ws: Path, small_path: str,
                                               tmp_home: Path) -> None:
    env = shell_env(small_path)
    out = cli("doctor", "--json", cwd=ws, env=env)
    assert out.returncode == 1
    rows = _rows(out.stdout)
    assert rows["shims"]["status"] == "fail"
    # Outside our repository the fix is the CLI itself, spelled so that it runs from here.
    fix = shlex.split(rows["shims"]["fix"])
    assert fix[1:] == ["shims", "install"] and shutil.which(fix[0], path=env["PATH"])
    assert rows["shell bootstrap"]["status"] == "fail"
    assert rows["modal credentials"]["status"] == "warn"
    install_shims(ws, env)
    assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    start = time.monotonic()
    out = cli("doctor", "--json", cwd=ws, env=env)
    assert time.monotonic() - start < 5
    rows = _rows(out.stdout)
    assert out.returncode == 0, rows
    for name in ("version", "backend local", "ledger", "shims", "shell bootstrap",
                 "routing in bash"):
        assert rows[name]["status"] == "ok", rows[name]
    assert rows["agent runner"]["status"] == "warn"
    assert "ran remotely" in rows["routing in bash"]["detail"]


def test_corrupt_ledger_is_a_failing_row(ws: Path, tmp_home: Path, small_path: str) -> None:
    (tmp_home / ".primary_compute_modal_usage.json").write_text("{not json")
    out = cli("doctor", "--json", cwd=ws, env=shell_env(small_path))
    assert out.returncode == 1
    assert _rows(out.stdout)["ledger"]["status"] == "fail"
    assert b"Traceback" not in out.stderr


def test_table_output_and_new_rows(ws: Path, small_path: str) -> None:
    out = cli("doctor", cwd=ws, env=shell_env(small_path))
    assert b"modal-offload doctor" in out.stdout and b"fail" in out.stdout

    def check_boom(ctx: Context) -> Row:
        raise RuntimeError("boom")

    rows = doctor_checks.run_all(doctor_checks.context(),
                                 [doctor_checks.check_version, check_boom])
    assert [r.status for r in rows] == ["ok", "fail"]
    assert rows[1].check == "boom" and "boom" in rows[1].detail
