"""Where a batch keeps what its tasks printed: `.modal-offload/batch/<id>/<task>/`.

Each task folder holds `stdout`, `stderr` and `exit_code`; the batch folder holds
`summary.txt` (the table printed at the end) and `summary.json`. The folder `.modal-offload`
never travels to a sandbox (sync/names.py HARD_NAMES), so outputs are not uploaded again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from ..fileio import atomic_write_text
from .runner import TaskState

OUTPUT_DIR = ".modal-offload/batch"


def new_batch_dir(root: Path) -> tuple[str, Path]:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    batch_id = f"{stamp}-{secrets.token_hex(2)}"
    where = root / OUTPUT_DIR / batch_id
    where.mkdir(parents=True, mode=0o700)
    return batch_id, where


def task_dir(batch: Path, index: int) -> Path:
    where = batch / str(index)
    where.mkdir(exist_ok=True, mode=0o700)
    return where


def open_streams(where: Path) -> tuple[int, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    return (os.open(where / "stdout", flags, 0o600), os.open(where / "stderr", flags, 0o600))


def table(states: Sequence[TaskState]) -> list[str]:
    """One line per task: index, state, where, exit code, elapsed, charged, input, note."""
    lines = [f"{'task':>4}  {'state':<9}  {'where':<6}  {'exit':>4}  {'elapsed':>8}  "
             f"{'min':>6}  input / error"]
    for s in states:
        o = s.outcome
        exit_code = "" if o is None else str(o.exit_code)
        note = (o.error if o and o.error else (s.task.input or "")) if o else (s.task.input or "")
        if o and o.conflicts:
            note = f"conflict: {', '.join(o.conflicts)}" + (f"; {note}" if note else "")
        lines.append(f"{s.task.index:>4}  {s.state:<9}  {s.where or '-':<6}  {exit_code:>4}  "
                     f"{s.elapsed():>7.1f}s  {(o.charged_min if o else 0.0):>6.3f}  "
                     f"{note[:60]}")
    return lines


def write_summary(batch: Path, batch_id: str, states: Sequence[TaskState]) -> None:
    rows = []
    for s in states:
        o = s.outcome
        rows.append({"task": s.task.index, "input": s.task.input, "state": s.state,
                     "where": s.where, "exit_code": None if o is None else o.exit_code,
                     "elapsed_s": round(s.elapsed(), 3),
                     "charged_min": 0.0 if o is None else round(o.charged_min, 6),
                     "error": "" if o is None else o.error,
                     "conflicts": [] if o is None else o.conflicts,
                     "bytes_up": 0 if o is None else o.bytes_up})
        folder = batch / str(s.task.index)
        if o is not None and folder.is_dir():
            atomic_write_text(folder / "exit_code", f"{o.exit_code}\n")
    atomic_write_text(batch / "summary.json",
                      json.dumps({"id": batch_id, "tasks": rows}, indent=2) + "\n")
    atomic_write_text(batch / "summary.txt", "\n".join(table(states)) + "\n")
