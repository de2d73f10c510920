"""`modal-offload batch [--tasks N | --map-over-file F | --map-over-values V...] [--parallel P]
[--fail-fast] [--backend B] -- CMD ARGS`: CMD once per task, each in its own sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import config, workspace
from ..backends._base import get_backend
from ..batch import outputs
from ..batch.plan import Task, plan
from ..batch.progress import Progress
from ..batch.runner import DONE, Batch, LocalHandle, Outcome, TaskGateway
from ..errors import BATCH_EXIT, INTERRUPTED_EXIT, BadInput, OffloadError
from ..gateway import RemoteRun, Streams, fd_sink
from ..remote_env import remote_environment
from ..ui import notice


def _argv(argv: Sequence[str]) -> list[str]:
    rest = list(argv)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if not rest:
        raise BadInput("no command given", "use `batch --tasks N -- CMD ARGS`")
    return rest


def run(argv: Sequence[str], tasks: int | None = None, map_over_file: str | None = None,
        map_over_values: Sequence[str] | None = None, parallel: int | None = None,
        fail_fast: bool = False, backend: str | None = None, gpu: str | None = None,
        task_minutes: float | None = None) -> int:
    command = _argv(argv)
    planned = plan(tasks, map_over_file, map_over_values)
    if parallel is not None and parallel < 1:
        raise BadInput(f"--parallel must be at least 1, got {parallel}", "pass a positive count")
    ws = workspace.require()
    cwd_rel = ws.relative(Path.cwd())
    overrides: dict[str, object] = {"backend": backend} if backend else {}
    if gpu is not None:
        overrides["gpu"] = gpu  # validated by config (pricing.parse_gpu): a one-line error
    settings = config.load(ws.root, overrides or None)
    chosen = get_backend(settings.backend)
    reason = chosen.unavailable_reason()
    remote_backend = chosen
    if reason:
        if backend is not None or settings.when_no_budget == "refuse":
            raise OffloadError(reason)
        notice(f"running the batch locally: {reason}")
        remote_backend = None  # type: ignore[assignment]
    batch_id, where = outputs.new_batch_dir(ws.root)
    forwarded = remote_environment(os.environ, settings.forward_env)

    def remote(task: Task, gateway: TaskGateway, handle: RemoteRun) -> Outcome:
        folder = outputs.task_dir(where, task.index)
        gateway.keep_changed = folder / "changed"
        out_fd, err_fd = outputs.open_streams(folder)
        try:
            report = gateway.run(command, cwd_rel=cwd_rel, env={**forwarded, **task.env()},
                                 streams=Streams(None, fd_sink(out_fd), fd_sink(err_fd)),
                                 sync_back=settings.sync_back, purpose="exec", handle=handle)
        finally:
            os.close(out_fd)
            os.close(err_fd)
        back = report.sync_back
        conflicts = [c.path for c in back.conflicts] if back else []
        changed = [*back.applied, *back.deleted] if back else []
        return Outcome(report.exit_code, charged_min=report.charged_min, conflicts=conflicts,
                       changed=changed, notices=list(report.notices),
                       bytes_up=report.sync_up.bytes_sent if report.sync_up else 0)

    def local(task: Task, handle: LocalHandle) -> Outcome:
        out_fd, err_fd = outputs.open_streams(outputs.task_dir(where, task.index))
        try:
            proc = subprocess.Popen(command, cwd=ws.root / cwd_rel,
                                    env={**os.environ, **task.env()}, stdin=subprocess.DEVNULL,
                                    stdout=out_fd, stderr=err_fd, start_new_session=True)
        except OSError as exc:
            return Outcome(127, error=f"cannot run {command[0]}: {exc.strerror}")
        finally:
            os.close(out_fd)
            os.close(err_fd)
        handle.target = lambda sig: os.killpg(proc.pid, sig)
        if handle.signalled is not None:
            handle.forward_signal(handle.signalled)
        code = proc.wait()
        return Outcome(128 - code if code < 0 else code)

    batch = Batch(settings, remote_backend, ws, planned, parallel=parallel or len(planned),
                  fail_fast=fail_fast, remote=remote, local=local, per_task_min=task_minutes)
    progress = Progress(batch.states)
    batch.on_change = progress.changed
    with progress:
        states = batch.run()
    outputs.write_summary(where, batch_id, states)
    for line in outputs.table(states):
        print(line, file=sys.stderr)
    for s in states:
        for text in (s.outcome.notices if s.outcome else []):
            notice(f"task {s.task.index}: {text}")
    rel = where.relative_to(ws.root)
    if batch.interrupted in (signal.SIGINT, signal.SIGKILL):
        notice(f"batch {batch_id} interrupted; outputs in {rel}")
        return INTERRUPTED_EXIT
    failed = [s for s in states if s.state != DONE or (s.outcome and s.outcome.conflicts)]
    if failed:
        notice(f"batch {batch_id}: {len(failed)} of {len(states)} tasks failed or conflicted; "
               f"outputs in {rel}")
        return BATCH_EXIT
    notice(f"batch {batch_id}: all {len(states)} tasks succeeded; outputs in {rel}")
    return 0
