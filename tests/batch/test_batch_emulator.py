"""`batch` and `heavy --map` on the Modal backend: the real client against the emulator."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from modal_offload.errors import BATCH_EXIT
from testing.modal_emulator import ModalEmulator
from tests.batch.shared import (
    CHECKSUM,
    batch_dir,
    combine,
    demo_workspace,
    passed,
    pytest_workspace,
    task_stdout,
)
from tests.helpers import cli, ledger, make_workspace

ENV = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5"}


def test_demo_over_8_sandboxes_gives_the_original_checksum(modal_emulator: ModalEmulator,
                                                           tmp_path: Path,
                                                           tmp_home: Path) -> None:
    ws = demo_workspace(tmp_path / "ws")
    out = cli("batch", "--tasks", "8", "--", "python", "slice.py", cwd=ws, env=ENV,
              timeout=300)
    assert out.returncode == 0, out.stderr
    assert combine(task_stdout(ws, 8)) == CHECKSUM
    sandboxes = modal_emulator.sandboxes()
    assert len({rec.sandbox_id for rec in sandboxes}) == 8  # each task its own sandbox
    assert all(not rec.running for rec in sandboxes)  # ended once their results were back
    summary = json.loads((batch_dir(ws) / "summary.json").read_text())
    # One upload: the first sandbox is synced, the other 7 start from its snapshot.
    sent = [t["bytes_up"] for t in summary["tasks"]]
    assert sum(1 for b in sent if b > 0) == 1
    assert len({rec.image_id for rec in sandboxes}) == 2
    charged = sum(t["charged_min"] for t in summary["tasks"])
    # Each sandbox's command time under its own meter; the backend adds the sandboxes'
    # idle time as "modal-idle" (backends/_modal_records.py).
    by_source = ledger(tmp_home)["history"][ledger(tmp_home)["day"]]["by_source"]
    assert charged > 0 and abs(by_source["exec"] - charged) < 1e-3


def test_a_failing_sandbox_keeps_the_others_results(modal_emulator: ModalEmulator,
                                                    tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    out = cli("batch", "--map-over-values", "a", "b", "c", "--", "sh", "-c",
              'echo "got $MODAL_OFFLOAD_TASK_INPUT"; [ "$MODAL_OFFLOAD_TASK_INPUT" != b ] '
              "|| exit 9", cwd=ws, env=ENV, timeout=120)
    assert out.returncode == BATCH_EXIT, out.stderr
    tasks = json.loads((batch_dir(ws) / "summary.json").read_text())["tasks"]
    assert [(t["state"], t["exit_code"]) for t in tasks] == \
        [("done", 0), ("failed", 9), ("done", 0)]
    assert task_stdout(ws, 3) == ["got a\n", "got b\n", "got c\n"]


SLOW = ("import time\n"
        "def work(p):\n"
        "    if p.get('fail'):\n"
        "        raise SystemExit('no: ' + str(p['n']))\n"
        "    time.sleep(p.get('sleep', 0))\n"
        "    return {'n': p['n']}\n")


def test_heavy_map_keeps_input_order_and_failures(modal_emulator: ModalEmulator,
                                                  tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", 'heavy_entry = "slow:work"\n', {"slow.py": SLOW})
    payloads = [{"n": 0, "sleep": 1.0}, {"n": 1, "fail": 1}, {"n": 2}]
    (ws / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in payloads))
    out = cli("heavy", "--map", "p.jsonl", "--mode", "modal", cwd=ws, env=ENV, timeout=120)
    assert out.returncode == BATCH_EXIT, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r.get("n") for r in lines] == [0, None, 2]
    assert lines[0]["execution"] == "modal" and "failed remotely" in lines[1]["error"]


def test_python_api_returns_results_in_input_order(modal_emulator: ModalEmulator,
                                                   tmp_path: Path,
                                                   monkeypatch: object) -> None:
    ws = make_workspace(tmp_path / "ws", 'heavy_entry = "slow:work"\n', {"slow.py": SLOW})
    code = ("import json\nfrom modal_offload.heavy import run_heavy_map\n"
            "print(json.dumps(run_heavy_map([{'n': 0, 'sleep': 0.5}, {'n': 1}], parallel=2,"
            " force_mode='modal')))\n")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], cwd=ws, capture_output=True,
                         env={**__import__("os").environ, **ENV}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [r["n"] for r in json.loads(out.stdout)] == [0, 1]


def test_pytest_in_4_rootfs_sandboxes_passes_as_many_as_one_run(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path) -> None:
    """pytest comes from the workspace's declared dependencies, in the real image."""
    ws = pytest_workspace(tmp_path / "ws")
    (ws / "requirements.txt").write_text("pytest\n")
    counts = []
    for shards in (1, 4):
        out = cli("batch", "--tasks", str(shards), "--", "python", "-m", "pytest", "-q",
                  "-p", "no:cacheprovider", "tests", cwd=ws, env=ENV, timeout=900)
        assert out.returncode == BATCH_EXIT, out.stderr  # 2 of the 20 fail on purpose
        counts.append(sum(passed(text) for text in task_stdout(ws, shards)))
        shutil.rmtree(ws / ".modal-offload")
    assert counts == [18, 18]


def test_budget_for_3_units_holds_across_8_modal_sandboxes(modal_emulator: ModalEmulator,
                                                           tmp_path: Path,
                                                           tmp_home: Path) -> None:
    """Scaled: a unit is 3 s. The lease covers a sandbox's whole life, so the backend's idle
    charges ("modal-idle") stay inside the cap too."""
    unit_min = 3 / 60
    ws = make_workspace(tmp_path / "ws")
    out = cli("batch", "--tasks", "8", "--task-minutes", str(1.5 * unit_min), "--",
              "sleep", "2", cwd=ws, timeout=300,
              env={**ENV, "PRIMARY_MODAL_MAX_MIN_PER_DAY": str(3 * unit_min),
                   "MODAL_OFFLOAD_WHEN_NO_BUDGET": "refuse"})
    assert out.returncode == BATCH_EXIT, out.stderr
    assert ledger(tmp_home)["used_min"] <= 3 * unit_min + 1e-9, ledger(tmp_home)
    states = [t["state"] for t in json.loads((batch_dir(ws) / "summary.json").read_text())
              ["tasks"]]
    assert states.count("done") >= 1 and "no-budget" in states
