"""Heavy calls as processes in a session (local sandbox backend standing in for Modal)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO, cli, ledger, make_workspace

SLOW = """
import time
def work(payload):
    print("working", flush=True)  # user prints must not spoil the result on stdout
    time.sleep(payload.get("sleep", 0))
    return {"slept": payload.get("sleep", 0)}
"""


def slow_workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", 'heavy_entry = "slow:work"\n', {"slow.py": SLOW})


ENV = {"MODAL_OFFLOAD_BACKEND": "local", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5"}


def test_auto_runs_remotely_and_charges(tmp_home: Path) -> None:
    out = cli("heavy", "--payload", '{"iterations":2000000,"workers":2}', cwd=REPO, env=ENV)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["execution"] == "remote-local"
    assert result["checksum"] == 3049778897579708928
    assert result["tracked_modal_min_today"] > 0
    assert round(ledger(tmp_home)["used_min"], 4) == result["tracked_modal_min_today"]


def test_user_prints_go_to_stderr_not_the_result(tmp_path: Path) -> None:
    ws = slow_workspace(tmp_path)
    out = cli("heavy", "--mode", "modal", "--payload", '{"sleep": 0}', cwd=ws, env=ENV)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["slept"] == 0 and b"working" in out.stderr


def test_edited_user_file_reaches_the_remote_without_rebuild(tmp_path: Path) -> None:
    ws = slow_workspace(tmp_path)
    assert cli("heavy", "--mode", "modal", "--payload", "{}", cwd=ws, env=ENV).returncode == 0
    (ws / "slow.py").write_text(SLOW.replace('"slept"', '"edited"'))
    out = cli("heavy", "--mode", "modal", "--payload", "{}", cwd=ws, env=ENV)
    assert "edited" in json.loads(out.stdout)


def test_no_budget_auto_falls_back_and_no_fallback_exits_3(tmp_home: Path) -> None:
    assert cli("usage", "add", "180").returncode == 0
    out = cli("heavy", "--payload", '{"iterations":1000}', cwd=REPO, env=ENV)
    assert out.returncode == 0 and json.loads(out.stdout)["execution"] == "local"
    assert b"budget" in out.stderr and out.stderr.count(b"\n") == 1
    strict = cli("heavy", "--no-local-fallback", "--payload", "{}", cwd=REPO, env=ENV)
    assert strict.returncode == 3
    forced = cli("heavy", "--mode", "modal", "--payload", "{}", cwd=REPO, env=ENV)
    assert forced.returncode == 3


def test_remote_failure_is_charged_and_reported(tmp_path: Path, tmp_home: Path) -> None:
    ws = make_workspace(tmp_path / "ws", 'heavy_entry = "bad:work"\n',
                        {"bad.py": "import time\ndef work(p):\n    time.sleep(1)\n"
                                   "    raise RuntimeError('boom')\n"})
    out = cli("heavy", "--mode", "modal", "--payload", "{}", cwd=ws, env=ENV)
    assert out.returncode == 1 and b"boom" in out.stderr
    assert ledger(tmp_home)["used_min"] >= 0.9 / 60


def test_sigkill_of_the_client_loses_at_most_one_heartbeat(tmp_path: Path,
                                                            tmp_home: Path) -> None:
    ws = slow_workspace(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "modal_offload", "heavy", "--mode", "modal",
                             "--payload", '{"sleep": 30}'], cwd=ws,
                            env={**os.environ, **ENV}, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    assert proc.stderr.readline() == b"working\n"  # the remote run has begun
    started = time.monotonic()
    time.sleep(3)
    elapsed = time.monotonic() - started
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    charged = ledger(tmp_home)["used_min"] * 60
    assert charged >= elapsed - 0.5, f"charged {charged:.2f}s of at least {elapsed:.2f}s"
    subprocess.run(["pkill", "-f", "modal_offload.worker --entry slow:work"])


def test_remote_run_is_capped_at_the_remaining_budget(tmp_path: Path, tmp_home: Path) -> None:
    ws = slow_workspace(tmp_path)
    started = time.monotonic()
    out = cli("heavy", "--mode", "modal", "--payload", '{"sleep": 60}', cwd=ws,
              env={**ENV, "PRIMARY_MODAL_MAX_MIN_PER_DAY": "0.05"})  # 3 seconds
    assert time.monotonic() - started < 20
    assert out.returncode != 0 and b"budget" in out.stderr
