"""`modal-offload batch` on the local sandbox backend: each task in its own scratch sandbox."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sys
from pathlib import Path

from modal_offload.errors import BATCH_EXIT
from tests.batch.shared import (
    CHECKSUM,
    batch_dir,
    combine,
    demo_workspace,
    passed,
    pytest_workspace,
    task_stdout,
)
from tests.helpers import cli, ledger, make_workspace, spawn_cli
from tests.host.helpers import alive, wait_for

ENV = {"MODAL_OFFLOAD_BACKEND": "local", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.2"}


def batch(ws: Path, *args: str, env: dict[str, str] | None = None,
          timeout: float = 120) -> tuple[int, bytes]:
    out = cli("batch", *args, cwd=ws, env={**ENV, **(env or {})}, timeout=timeout)
    return out.returncode, out.stderr


def test_demo_split_over_8_tasks_gives_the_original_checksum(tmp_path: Path) -> None:
    ws = demo_workspace(tmp_path / "ws")
    code, err = batch(ws, "--tasks", "8", "--parallel", "4", "--", sys.executable, "slice.py")
    assert code == 0, err
    assert combine(task_stdout(ws, 8)) == CHECKSUM
    summary = json.loads((batch_dir(ws) / "summary.json").read_text())
    assert [t["state"] for t in summary["tasks"]] == ["done"] * 8


def test_each_task_gets_its_id_count_and_input(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    code, err = batch(ws, "--map-over-values", "a b", "c", "--", "sh", "-c",
                      'echo "$MODAL_OFFLOAD_TASK_ID/$MODAL_OFFLOAD_TASK_COUNT:'
                      '$MODAL_OFFLOAD_TASK_INPUT:$(pwd)"')
    assert code == 0, err
    out = task_stdout(ws, 2)
    assert [line.split(":")[:2] for line in out] == [["0/2", "a b"], ["1/2", "c"]]
    # Its own sandbox each: two scratch folders, neither the workspace.
    folders = {line.strip().split(":")[2] for line in out}
    assert len(folders) == 2 and str(ws) not in folders


def test_map_over_file_takes_its_non_empty_lines(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={"inputs.txt": "x\n\ny\n"})
    code, err = batch(ws, "--map-over-file", "inputs.txt", "--", "sh", "-c",
                      'echo "$MODAL_OFFLOAD_TASK_INPUT"')
    assert code == 0, err
    assert task_stdout(ws, 2) == ["x\n", "y\n"]


def test_a_failing_task_is_reported_and_the_others_kept(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    code, err = batch(ws, "--tasks", "4", "--", "sh", "-c",
                      'echo out-$MODAL_OFFLOAD_TASK_ID; [ $MODAL_OFFLOAD_TASK_ID != 2 ] || exit 7')
    assert code == BATCH_EXIT, err
    where = batch_dir(ws)
    assert [(where / str(k) / "exit_code").read_text() for k in range(4)] == \
        ["0\n", "0\n", "7\n", "0\n"]
    assert task_stdout(ws, 4) == [f"out-{k}\n" for k in range(4)]
    assert re.search(rb"\n +2 +failed +local +7 ", err), err
    assert b"1 of 4 tasks failed" in err


def test_fail_fast_stops_the_rest(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    code, err = batch(ws, "--tasks", "3", "--parallel", "1", "--fail-fast", "--",
                      "sh", "-c", "exit 3")
    assert code == BATCH_EXIT, err
    states = [t["state"] for t in json.loads((batch_dir(ws) / "summary.json").read_text())
              ["tasks"]]
    assert states == ["failed", "cancelled", "cancelled"]


WRITERS = ('echo $MODAL_OFFLOAD_TASK_ID > own-$MODAL_OFFLOAD_TASK_ID.txt; '
           'sleep 0.$MODAL_OFFLOAD_TASK_ID; echo from-$MODAL_OFFLOAD_TASK_ID > shared.txt')


def test_changed_files_come_back_and_two_writers_conflict(tmp_path: Path) -> None:
    """All at once: both tasks start from the same workspace; the second one's version is
    kept beside the first's."""
    ws = make_workspace(tmp_path / "ws", files={"shared.txt": "orig\n"})
    code, err = batch(ws, "--tasks", "2", "--", "sh", "-c", WRITERS)
    assert code == BATCH_EXIT, err  # the conflict fails the batch, loudly
    assert (ws / "own-0.txt").read_text() == "0\n" and (ws / "own-1.txt").read_text() == "1\n"
    versions = {(ws / "shared.txt").read_text(), *(p.read_text()
                                                    for p in ws.glob("shared.txt.remote-*"))}
    assert versions == {"from-0\n", "from-1\n"}  # nothing lost
    assert b"conflict: shared.txt" in err
    summary = json.loads((batch_dir(ws) / "summary.json").read_text())
    assert sorted(len(t["conflicts"]) for t in summary["tasks"]) == [0, 1]


def test_one_at_a_time_a_second_writer_is_still_a_conflict(tmp_path: Path) -> None:
    """Task 1 starts after task 0's change landed: changing it again is reported, and task
    0's version stays in its task folder."""
    ws = make_workspace(tmp_path / "ws", files={"shared.txt": "orig\n"})
    code, err = batch(ws, "--tasks", "2", "--parallel", "1", "--", "sh", "-c", WRITERS)
    assert code == BATCH_EXIT, err
    assert (ws / "shared.txt").read_text() == "from-1\n"
    assert (batch_dir(ws) / "0" / "changed" / "shared.txt").read_text() == "from-0\n"
    assert b"shared.txt was also changed by task 0" in err


def test_budget_for_3_units_is_never_exceeded_by_8_one_unit_tasks(tmp_path: Path,
                                                                  tmp_home: Path) -> None:
    """Scaled: a unit is 3 s. 8 tasks each sleeping one unit, 3 units of budget, leases of
    1.5 units: the ledger never ends above the cap, and the tasks that found no budget say so."""
    unit_min = 3 / 60
    ws = make_workspace(tmp_path / "ws")
    code, err = batch(ws, "--tasks", "8", "--parallel", "8",
                      "--task-minutes", str(1.5 * unit_min), "--", "sleep", "3",
                      env={"PRIMARY_MODAL_MAX_MIN_PER_DAY": str(3 * unit_min),
                           "MODAL_OFFLOAD_WHEN_NO_BUDGET": "refuse"})
    assert code == BATCH_EXIT, err
    assert ledger(tmp_home)["used_min"] <= 3 * unit_min + 1e-9
    states = [t["state"] for t in json.loads((batch_dir(ws) / "summary.json").read_text())
              ["tasks"]]
    assert "no-budget" in states and states.count("done") >= 1


def test_no_budget_runs_the_task_locally_by_default(tmp_path: Path, tmp_home: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    assert cli("usage", "add", "180").returncode == 0
    code, err = batch(ws, "--tasks", "2", "--", "sh", "-c", "pwd")
    assert code == 0, err
    assert task_stdout(ws, 2) == [f"{ws}\n"] * 2  # here, in the workspace
    assert b"running locally" in err


def test_pytest_in_4_shards_passes_as_many_as_one_run(tmp_path: Path) -> None:
    ws = pytest_workspace(tmp_path / "ws")
    one, err = batch(ws, "--tasks", "1", "--", sys.executable, "-m", "pytest", "-q",
                     "-p", "no:cacheprovider", "tests")
    assert one == BATCH_EXIT, err  # 2 of the 20 tests fail on purpose
    [single] = task_stdout(ws, 1)
    shutil.rmtree(ws / ".modal-offload")
    code, err = batch(ws, "--tasks", "4", "--", sys.executable, "-m", "pytest", "-q",
                      "-p", "no:cacheprovider", "tests")
    assert code == BATCH_EXIT, err
    shards = task_stdout(ws, 4)
    assert passed(single) == 18 and sum(passed(s) for s in shards) == passed(single)


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    for args in (["--", "true"], ["--tasks", "0", "--", "true"], ["--tasks", "2"],
                 ["--tasks", "2", "--gpu", "NOPE:x", "--", "true"]):
        code, err = batch(ws, *args)
        assert code == 2 and err.count(b"\n") == 1, err


def test_ctrl_c_stops_every_task(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    proc = spawn_cli("batch", "--tasks", "3", "--", "sh", "-c", "echo $$; exec sleep 60",
                     cwd=ws, env=ENV)

    def pids() -> list[int]:
        outs = list((ws / ".modal-offload" / "batch").glob("*/*/stdout"))
        texts = [p.read_text().strip() for p in outs]
        return [int(t) for t in texts if t] if len(texts) == 3 else []

    assert wait_for(lambda: len(pids()) == 3, timeout=30)
    running = pids()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert wait_for(lambda: not any(alive(pid) for pid in running), timeout=10)
    tasks = json.loads((batch_dir(ws) / "summary.json").read_text())["tasks"]
    assert [t["exit_code"] for t in tasks] == [130, 130, 130], tasks
