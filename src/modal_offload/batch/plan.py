"""What a batch runs: one task per index, input or line, and the environment each gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput

MAX_TASKS = 10_000  # a typo (`--tasks 1000000`) must not start a million sandboxes


@dataclass(frozen=True)
class Task:
    index: int  # 0..count-1, as Coiled numbers them
    count: int
    input: str | None = None  # when mapping: the value or the file's line

    def env(self) -> dict[str, str]:
        env = {"MODAL_OFFLOAD_TASK_ID": str(self.index),
               "MODAL_OFFLOAD_TASK_COUNT": str(self.count)}
        if self.input is not None:
            env["MODAL_OFFLOAD_TASK_INPUT"] = self.input
        return env


def plan(tasks: int | None, map_file: str | None, values: Sequence[str] | None) -> list[Task]:
    """Exactly one of the three sources; a file maps over its non-empty lines."""
    given = [tasks is not None, map_file is not None, bool(values)]
    if sum(given) != 1:
        raise BadInput("give exactly one of --tasks N, --map-over-file F, --map-over-values V...",
                       "e.g. `modal-offload batch --tasks 8 -- python job.py`")
    inputs: list[str | None]
    if tasks is not None:
        if tasks < 1:
            raise BadInput(f"--tasks must be at least 1, got {tasks}", "pass a positive count")
        inputs = [None] * tasks
    elif map_file is not None:
        try:
            text = Path(map_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read {map_file} ({exc.__class__.__name__})",
                           "check the path; it must be UTF-8 text, one input per line") from None
        inputs = [line for line in text.splitlines() if line.strip()]
        if not inputs:
            raise BadInput(f"{map_file} has no non-empty line", "put one input per line")
    else:
        inputs = list(values or [])
    for value in inputs:
        if value is not None and "\0" in value:
            raise BadInput("a task input holds a NUL byte", "environment values cannot")
    if len(inputs) > MAX_TASKS:
        raise BadInput(f"{len(inputs)} tasks is more than {MAX_TASKS}", "split the batch")
    return [Task(k, len(inputs), value) for k, value in enumerate(inputs)]
