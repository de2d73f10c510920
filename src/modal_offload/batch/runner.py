"""Runs a batch's tasks: each in its own sandbox under a lease, at most `parallel` at once.

What a task does (a command, a heavy call) is the caller's `Work`; this module owns the
scheduling every kind of batch shares: leases, fail-fast, Ctrl-C, states for the progress
table, and ending each task's sandbox once its results are back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shutil
import signal as _signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..backends._base import Backend, Process, Session
from ..budget import Ledger
from ..config import Settings
from ..errors import BackendError, BudgetExhausted, OffloadError
from ..fileio import atomic_write_text
from ..gateway import Gateway, RemoteRun, Sink, Streams
from ..image.spec import ImageSpec
from ..workspace import Workspace
from .leases import LeasePool
from .plan import Task

# Kept for the sync back of a task whose command used its whole lease: the lease covers
# the sandbox's whole metered life, not only its command.
BACK_RESERVE_SECONDS = 1.0
# States a task goes through; the last four are final.
QUEUED, WAITING, RUNNING, DONE, FAILED, CANCELLED, NO_BUDGET = (
    "queued", "waiting", "running", "done", "failed", "cancelled", "no-budget")
FINAL = (DONE, FAILED, CANCELLED, NO_BUDGET)


class Stoppable(Protocol):
    def forward_signal(self, sig: int) -> None: ...


@dataclass
class Outcome:
    exit_code: int
    value: Any = None  # what the work returns (a heavy result), kept in input order
    error: str = ""
    charged_min: float = 0.0
    conflicts: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # paths its sync back wrote or removed
    bytes_up: int = 0  # what its sync up sent (the workspace, once per sandbox)
    notices: list[str] = field(default_factory=list)


@dataclass
class TaskState:
    task: Task
    state: str = QUEUED
    where: str = ""  # the backend's name, or "local"
    started: float | None = None
    ended: float | None = None
    outcome: Outcome | None = None

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or now or time.monotonic()) - self.started


class SyncGate:
    """Every task starts from the same workspace: no task's changes are synced back while a
    task already started has not sent its copy up yet. Sync backs then run one at a time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: set[int] = set()
        self.back_lock = threading.Lock()

    def started(self, index: int) -> None:
        with self._cond:
            self._pending.add(index)

    def synced_up(self, index: int) -> None:
        """Also once a task ends without syncing (it failed to start): it no longer waits."""
        with self._cond:
            self._pending.discard(index)
            self._cond.notify_all()

    def wait_all_up(self) -> None:
        with self._cond:
            while self._pending:
                self._cond.wait()


class Seed:
    """One upload for the batch: the first task's sandbox, once synced, is snapshotted and
    every other sandbox starts from that snapshot with the same sync baseline, so its own
    sync up finds nothing to send. `handle` stays "" when the backend cannot snapshot:
    then each sandbox is synced as usual."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.handle = ""
        self.baseline: dict[str, Any] | None = None

    def publish(self, handle: str = "", baseline: dict[str, Any] | None = None) -> None:
        if not self.ready.is_set():
            self.handle, self.baseline = handle, baseline
            self.ready.set()

    def wait(self, cancelled: threading.Event) -> bool:
        while not self.ready.wait(0.2):
            if cancelled.is_set():
                return False
        return True


class _GatedSync:
    """A WorkspaceSync whose up() tells the gate it is done (and, for the seeding task,
    snapshots the synced sandbox for the others)."""

    def __init__(self, inner: Any, gate: SyncGate, index: int, session: Session,
                 seed: Seed | None) -> None:
        self._inner, self._gate, self._index = inner, gate, index
        self._session, self._seed = session, seed

    def up(self, then: Any = None) -> Any:
        try:
            report = self._inner.up(then=then)
            if self._seed is not None:
                self._publish(self._seed)
            return report
        finally:
            if self._seed is not None:
                self._seed.publish()  # never leave the others waiting
            self._gate.synced_up(self._index)

    def _publish(self, seed: Seed) -> None:
        try:
            baseline = json.loads(self._inner.cache_path.read_bytes())
            handle = self._session.snapshot()
        except (NotImplementedError, OffloadError, OSError, ValueError) as exc:
            logging.getLogger(__name__).info("no snapshot, each sandbox syncs: %s", exc)
            return
        seed.publish(handle, baseline)

    def back(self, remote_changed: bool | None = None, prepared: Any = None) -> Any:
        return self._inner.back(remote_changed, prepared)


def keep_copies(root: Path, applied: Sequence[str], into: Path) -> None:
    for rel in applied:
        source = root / rel
        if source.is_symlink() or not source.is_file():
            continue
        target = into / rel
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target, follow_symlinks=False)


class TaskGateway(Gateway):
    """One task's own sandbox (session name ending in `-t<k>`) under its lease."""

    def __init__(self, settings: Settings, backend: Backend, workspace: Workspace,
                 ledger: Ledger, task: Task, lease_min: float, gate: SyncGate) -> None:
        # The sandbox asks the ledger for a lease of its timeout (meter.py, issue 15): the
        # task's share, so the ledger's leases of all the batch's sandboxes fit the cap.
        settings = dataclasses.replace(settings, timeout_seconds=max(
            1, min(settings.timeout_seconds, math.ceil(lease_min * 60))))
        super().__init__(settings, backend, workspace, ledger)
        self.task = f"t{task.index}"
        self.index = task.index
        self.lease_min = lease_min
        self.session: Session | None = None
        # The lease covers the sandbox's whole life as seen from here (open, sync, run,
        # sync back, terminate): more than the meter charges, and also the backend's own
        # charges outside commands (the Modal backend's idle time, "modal-idle").
        self._deadline = time.monotonic() + lease_min * 60
        self._gate = gate
        # Where this task's changed files are copied as they land, so a later task that
        # changes them again loses nothing of this one's (None: not kept).
        self.keep_changed: Path | None = None
        self.seeder: Seed | None = None  # set on the task whose sandbox the others copy
        self.seed_baseline: dict[str, Any] | None = None  # the seed's sync baseline

    def start_clock(self) -> float:
        """The lease starts now (not while the task waited for the seed)."""
        now = time.monotonic()
        self._deadline = now + self.lease_min * 60
        return now

    def remaining_min(self) -> float:
        # Gateway.run sizes the sandbox's timeout from this: never beyond the lease.
        return min(super().remaining_min(), self.lease_min)

    def _after_open(self, session: Session, family: str, image: ImageSpec) -> None:
        self.session = session
        if self.seed and session.fresh and self.seed_baseline is not None:
            # The snapshot holds what the seed's baseline describes: make it this
            # session's baseline, so sync up sends only what changed since.
            cache = Gateway._sync(self, session, False).cache_path
            atomic_write_text(cache, json.dumps({**self.seed_baseline,
                                                 "session_id": session.id}))
        super()._after_open(session, family, image)

    def _run_process(self, process: Process, streams: Streams, handle: RemoteRun,
                     limit: float, notices: list[str]) -> tuple[int, bool, bool | None]:
        left = self._deadline - time.monotonic() - BACK_RESERVE_SECONDS
        return super()._run_process(process, streams, handle, max(0.1, min(limit, left)),
                                    notices)

    def _sync(self, session: Session, progress: bool | Sink) -> Any:
        return _GatedSync(super()._sync(session, progress), self._gate, self.index, session,
                          self.seeder)

    def _sync_back(self, session: Session, sync: Any, report: Any,
                   remote_changed: bool | None = None, prepared: Any = None) -> None:
        # One task's changes land in the workspace at a time, once every started task has
        # its copy: a later one then sees them as local changes, so a file two tasks
        # changed is a conflict (sync/client.py keeps the second version beside it).
        self._gate.wait_all_up()
        with self._gate.back_lock:
            super()._sync_back(session, sync, report, remote_changed, prepared)
            if self.keep_changed is not None and report.sync_back is not None:
                keep_copies(self.workspace.root, report.sync_back.applied, self.keep_changed)


RemoteWork = Callable[[Task, TaskGateway, RemoteRun], Outcome]
LocalWork = Callable[[Task, "LocalHandle"], Outcome]


class LocalHandle:
    """Ctrl-C for a task running here: its work registers what to signal."""

    def __init__(self) -> None:
        self.target: Callable[[int], None] | None = None
        self.signalled: int | None = None

    def forward_signal(self, sig: int) -> None:
        self.signalled = sig
        if self.target is not None:
            with contextlib.suppress(OSError):
                self.target(sig)


class Batch:
    """`run()` returns every task's state, in input order, once all are final."""

    def __init__(self, settings: Settings, backend: Backend | None, workspace: Workspace,
                 tasks: Sequence[Task], *, parallel: int, fail_fast: bool,
                 remote: RemoteWork, local: LocalWork | None, ledger: Ledger | None = None,
                 per_task_min: float | None = None,
                 on_change: Callable[[TaskState], None] | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.workspace = workspace
        self.states = [TaskState(t) for t in tasks]
        self.parallel = max(1, min(parallel, len(tasks) or 1))
        self.fail_fast = fail_fast
        self.remote = remote
        self.local = local
        self.ledger = ledger or Ledger()
        self.on_change = on_change or (lambda _s: None)
        self.cancelled = threading.Event()
        self.interrupted: int | None = None
        self._handles: dict[int, Stoppable] = {}
        self._lock = threading.Lock()
        self._next = 0
        self.gate = SyncGate()
        self._all_done = threading.Condition()
        self._running_workers = self.parallel
        self._claims: dict[str, int] = {}  # path -> the task whose change landed first
        self.seed: Seed | None = Seed() if backend is not None and len(tasks) > 1 else None
        self._seeder_taken = False
        remaining = self.ledger.snapshot().remaining(settings.max_min_per_day)
        if per_task_min is None:
            # An equal share by default, so `parallel` sandboxes can all run at once.
            per_task_min = min(settings.timeout_seconds / 60, remaining / self.parallel)
        self.pool = LeasePool(remaining, per_task_min)

    # ------------------------------------------------------------------ running
    def run(self) -> list[TaskState]:
        if self.backend is not None:
            self.ledger.settle_pending()
        workers = [threading.Thread(target=self._worker, name=f"batch-{k}", daemon=True)
                   for k in range(self.parallel)]
        for w in workers:
            w.start()
        # Completion is counted, not joined: a Thread.join interrupted by Ctrl-C can report
        # a thread as finished while it still runs (CPython gh-89437, bpo-45274).
        try:
            self._wait_workers()
        except KeyboardInterrupt:
            self.stop(_signal.SIGINT)
            try:
                self._wait_workers()
            except KeyboardInterrupt:  # a second Ctrl-C: stop now
                self.stop(_signal.SIGKILL)
                self._wait_workers()
        if self.seed is not None and self.seed.handle and self.backend is not None:
            with contextlib.suppress(OffloadError, OSError):
                self.backend.drop_snapshot(self.seed.handle)
        return self.states

    def _wait_workers(self) -> None:
        with self._all_done:
            while self._running_workers:
                self._all_done.wait(0.2)

    def stop(self, sig: int) -> None:
        """Stop every task: queued ones never start, running ones get `sig`."""
        self.interrupted = self.interrupted or sig
        self.cancelled.set()
        with self._lock:
            handles = list(self._handles.values())
        for handle in handles:
            handle.forward_signal(sig)

    def _take(self) -> TaskState | None:
        with self._lock:
            if self._next >= len(self.states):
                return None
            state = self.states[self._next]
            self._next += 1
            return state

    def _set(self, state: TaskState, new: str) -> None:
        state.state = new
        if new == RUNNING and state.started is None:
            state.started = time.monotonic()
        if new in FINAL:
            state.ended = time.monotonic()
            if state.started is None:
                state.started = state.ended
        self.on_change(state)

    def _worker(self) -> None:
        try:
            self._work()
        finally:
            with self._all_done:
                self._running_workers -= 1
                self._all_done.notify_all()

    def _work(self) -> None:
        while (state := self._take()) is not None:
            if self.cancelled.is_set():
                self._set(state, CANCELLED)
                continue
            try:
                self._run_one(state)
            except Exception as exc:  # a task's failure is its result, never the batch's
                state.outcome = Outcome(1, error=f"{exc.__class__.__name__}: {exc}")
                self._set(state, FAILED)
            if state.state == FAILED and self.fail_fast and not self.cancelled.is_set():
                self.stop(_signal.SIGTERM)

    def _run_one(self, state: TaskState) -> None:
        if self.backend is None:
            self._run_local(state, "")
            return
        self._set(state, WAITING)
        lease = self.pool.acquire(self.cancelled)
        if lease is None:
            if self.cancelled.is_set():
                self._set(state, CANCELLED)
                return
            self._no_budget(state, "the daily remote budget cannot cover another sandbox")
            return
        gateway = TaskGateway(self.settings, self.backend, self.workspace, self.ledger,
                              state.task, lease, self.gate)
        if self.seed is not None:
            with self._lock:
                seeding, self._seeder_taken = not self._seeder_taken, True
            if seeding:
                gateway.seeder = self.seed
            elif not self.seed.wait(self.cancelled):
                self.pool.release(lease, 0.0)
                self._set(state, CANCELLED)
                return
            else:
                gateway.seed, gateway.seed_baseline = self.seed.handle, self.seed.baseline
        self.gate.started(state.task.index)
        handle = RemoteRun()
        began = gateway.start_clock()
        used = lease  # unknown until it has ended: assume all of it was spent
        state.where = self.backend.name
        self._set(state, RUNNING)
        with self._lock:
            self._handles[state.task.index] = handle
        try:
            outcome = self.remote(state.task, gateway, handle)
        except BudgetExhausted as exc:
            if gateway.session is None:  # refused before any sandbox: nothing was spent
                used = 0.0
                self._no_budget(state, exc.one_line())
                return
            outcome = Outcome(exc.exit_code, error=f"its lease ran out: {exc.one_line()}")
        except OffloadError as exc:
            outcome = Outcome(exc.exit_code, error=exc.one_line())
        finally:
            if gateway.seeder is not None:
                gateway.seeder.publish()  # it failed before syncing: the others sync
            self.gate.synced_up(state.task.index)
            with self._lock:
                self._handles.pop(state.task.index, None)
            if gateway.session is not None:
                # Its results are back: an idle sandbox would bill until its idle timeout.
                with contextlib.suppress(OffloadError, OSError):
                    gateway.session.terminate()
            if used:  # not a refused start: what its whole life took
                used = (time.monotonic() - began) / 60
            self.pool.release(lease, used)
        self._finish(state, outcome)

    def _no_budget(self, state: TaskState, why: str) -> None:
        if self.local is not None and self.settings.when_no_budget == "local":
            self._run_local(state, f"running locally: {why}")
            return
        state.outcome = Outcome(BudgetExhausted.exit_code, error=why)
        self._set(state, NO_BUDGET)

    def _run_local(self, state: TaskState, notice: str) -> None:
        if self.local is None:
            state.outcome = Outcome(BackendError.exit_code, error="no backend to run on")
            self._set(state, FAILED)
            return
        handle = LocalHandle()
        state.where = "local"
        self._set(state, RUNNING)
        with self._lock:
            self._handles[state.task.index] = handle
        try:
            outcome = self.local(state.task, handle)
        finally:
            with self._lock:
                self._handles.pop(state.task.index, None)
        if notice:
            outcome.notices.insert(0, notice)
        self._finish(state, outcome)

    def _finish(self, state: TaskState, outcome: Outcome) -> None:
        # A task started after another's changes landed saw them; changing the same path
        # again is still a conflict between the two (the first version is kept in its task
        # folder, see keep_copies), never a silent last-writer-wins.
        with self._lock:
            for path in outcome.changed:
                first = self._claims.setdefault(path, state.task.index)
                if first != state.task.index and path not in outcome.conflicts:
                    outcome.conflicts.append(path)
                    outcome.notices.append(f"{path} was also changed by task {first} (its "
                                           f"version is kept in its task folder)")
        state.outcome = outcome
        self._set(state, DONE if outcome.exit_code == 0 and not outcome.error else FAILED)
