"""`run_heavy_map(payloads, parallel=P)`: `run_heavy` over many payloads, each in its own
sandbox under one budget; results in input order, a task's failure being its result."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import config, heavy, workspace
from ..backends._base import get_backend
from ..budget import Ledger
from ..errors import BadInput, OffloadError
from ..gateway import RemoteRun
from ..ui import notice
from .plan import Task
from .runner import DONE, Batch, LocalHandle, Outcome, TaskGateway


def _error_result(outcome: Outcome | None, state: str) -> dict[str, Any]:
    error = outcome.error if outcome and outcome.error else state
    return {"error": error, "exit_code": outcome.exit_code if outcome else None}


def run_heavy_map(payloads: Sequence[dict[str, Any]], parallel: int | None = None,
                  max_min_per_day: float | None = None, force_mode: str | None = None,
                  *, ledger: Ledger | None = None, task_minutes: float | None = None,
                  gpu: str | None = None) -> list[dict[str, Any]]:
    """One result per payload, in order: the entry's dict (with `execution`), or
    `{"error": ..., "exit_code": ...}` for a payload that failed."""
    mode = force_mode or "auto"
    if mode not in heavy.MODES:
        raise BadInput(f"unknown mode {mode!r}", f"use one of: {', '.join(heavy.MODES)}")
    if parallel is not None and parallel < 1:
        raise BadInput(f"parallel must be at least 1, got {parallel}", "pass a positive count")
    if max_min_per_day is not None and (math.isnan(max_min_per_day) or max_min_per_day < 0):
        raise BadInput(f"max_min_per_day must be >= 0, got {max_min_per_day!r}",
                       "pass minutes per day")
    checked = [heavy.validate_payload(p) for p in payloads]
    if not checked:
        return []
    root = heavy._root()
    overrides: dict[str, Any] = {} if max_min_per_day is None else {
        "max_min_per_day": max_min_per_day}
    if gpu is not None:
        overrides["gpu"] = gpu
    settings = config.load(root, overrides)
    ledger = ledger or Ledger()
    backend = None
    if mode != "local":
        chosen = get_backend(settings.backend)
        reason = chosen.unavailable_reason()
        if reason and mode == "modal":
            raise OffloadError(reason)
        if reason:
            notice(f"running locally: {reason}")
        else:
            backend = chosen
    tasks = [Task(k, len(checked)) for k in range(len(checked))]

    def remote(task: Task, gateway: TaskGateway, handle: RemoteRun) -> Outcome:
        charged: list[float] = []
        result = heavy.run_remote(checked[task.index], settings, root, gateway, notice,
                                  handle=handle, charged=charged)
        name = gateway.backend.name
        result["execution"] = "modal" if name == "modal" else f"remote-{name}"
        return Outcome(0, value=result, charged_min=sum(charged))

    def local(task: Task, handle: LocalHandle) -> Outcome:
        if mode == "modal":
            return Outcome(OffloadError.exit_code, error="no remote budget (mode modal)")
        try:
            result = heavy.run_local(checked[task.index], settings, root)
        except OffloadError as exc:
            return Outcome(exc.exit_code, error=exc.one_line())
        result["execution"] = "local"
        return Outcome(0, value=result)

    batch = Batch(settings, backend, workspace.Workspace(root), tasks,
                  parallel=parallel or len(tasks), fail_fast=False, remote=remote,
                  local=local, ledger=ledger, per_task_min=task_minutes)
    states = batch.run()
    return [s.outcome.value if s.state == DONE and s.outcome is not None
            else _error_result(s.outcome, s.state) for s in states]
