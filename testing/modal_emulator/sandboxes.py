"""Sandboxes as scratch directories with real processes, and the registry that finds them.

A sandbox's filesystem root "/" is a scratch directory `<base_dir>/<sandbox_id>/`. Absolute
sandbox paths used as working directories are mapped into it (``/workspace/sub`` ->
``<root>/workspace/sub``), created on demand. argv is never rewritten: a command that names an
absolute path such as ``cat /etc/hostname`` sees the host's file.

In image mode rootfs a sandbox has a `Container` (rootfs/container.py): its root is the
container's "/", and every process runs inside the container, so paths are container paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import posixpath
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from modal_proto import api_pb2

from . import ids
from .process import ManagedProcess, OutputBuffer, PtyOptions
from .records import ExecRecord, SandboxRecord

if TYPE_CHECKING:
    from .rootfs import Container

GenericResult = api_pb2.GenericResult

# Where HOME points inside a sandbox (Modal containers run as root).
SANDBOX_HOME = "/root"
# Working directory when neither the sandbox, the exec nor the image sets one (Docker's default).
DEFAULT_WORKDIR = "/"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxFinishedError(Exception):
    """The sandbox has already terminated (or is terminating)."""


class WorkdirMissingError(Exception):
    """An exec asked for a working directory that does not exist in the sandbox."""


def map_sandbox_path(root: Path, sandbox_path: str) -> Path:
    """Map an absolute sandbox path into the scratch root; `..` cannot climb above the root."""
    if not sandbox_path.startswith("/"):
        raise ValueError(f"sandbox path must be absolute, got {sandbox_path!r}")
    normalized = posixpath.normpath(sandbox_path).lstrip("/")
    return root / normalized if normalized else root


def base_env() -> dict[str, str]:
    """The minimal environment every sandbox process starts from (before sandbox/exec env).

    PATH puts the emulator's interpreter directory first so `python`/`python3` resolve to the
    venv that has the project's packages, rather than a bare system Python.
    """
    return {"PATH": f"{os.path.dirname(sys.executable)}:{_SYSTEM_PATH}"}


class Sandbox:
    """One running (or finished) sandbox. All methods run on the emulator's event loop."""

    def __init__(
        self,
        record: SandboxRecord,
        *,
        image_workdir: str | None,
    ) -> None:
        self.record = record
        self.sandbox_id = record.sandbox_id
        self.task_id = record.task_id
        self.root = record.root
        self.default_workdir = record.workdir or image_workdir or DEFAULT_WORKDIR
        self.result: api_pb2.GenericResult | None = None
        # Set by SandboxTerminateV2: the sandbox is shutting down but still holds its name.
        self.terminating = False
        self.done = asyncio.Event()
        self.entrypoint: ManagedProcess | None = None
        # Sandbox-level stdio when there is no entrypoint: empty streams that end with the sandbox.
        self._idle_stdout = OutputBuffer()
        self._idle_stderr = OutputBuffer()
        self.execs: dict[str, ManagedProcess] = {}
        self._exec_records: dict[str, ExecRecord] = {}
        self._active_execs = 0
        self._last_activity = time.monotonic()
        self._activity = asyncio.Event()
        self._timers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        # rootfs mode: the sandbox's container; processes run inside it (see rootfs/).
        self.container: Container | None = None

    def attach_container(self, container: Container) -> None:
        """Run this sandbox's processes inside `container`; its "/" becomes the root."""
        self.container = container
        self.root = self.record.root = container.root
        if not self.record.workdir:
            self.default_workdir = container.image.workdir

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self.result is None

    @property
    def stdout(self) -> OutputBuffer:
        return self.entrypoint.stdout if self.entrypoint else self._idle_stdout

    @property
    def stderr(self) -> OutputBuffer:
        return self.entrypoint.stderr if self.entrypoint else self._idle_stderr

    def env_for(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        if self.container is not None:
            return self.container.env(self.record.env, extra)
        env = base_env()
        env["HOME"] = str(map_sandbox_path(self.root, SANDBOX_HOME))
        env.update(self.record.env)
        env.update(extra)
        return env

    def workdir_path(self, sandbox_path: str | None) -> Path:
        """The host folder for an exec's working directory. The sandbox's own workdir is
        created with the sandbox (as Docker's WORKDIR is); an exec's must already exist."""
        if sandbox_path is None:
            path = map_sandbox_path(self.root, self.default_workdir)
            path.mkdir(parents=True, exist_ok=True)
            return path
        path = map_sandbox_path(self.root, sandbox_path)
        if not path.is_dir():
            raise WorkdirMissingError(sandbox_path)
        return path

    def request_terminate(self, seconds: float) -> None:
        """SandboxTerminateV2: the sandbox finishes `seconds` later and keeps its name (and
        refuses new execs) until then. Idempotent."""
        if self.result is not None or self.terminating:
            return
        self.terminating = True

        async def later() -> None:
            await asyncio.sleep(seconds)  # the container's shutdown, not a sync
            await self.finish(
                GenericResult.GENERIC_STATUS_TERMINATED, "terminate", exception="Sandbox terminated"
            )

        self._timers.append(asyncio.create_task(later()))

    def _command(self, argv: list[str], workdir: str | None) -> tuple[list[str], Path]:
        """(argv, host cwd) that run `argv` in the sandbox with working directory `workdir`."""
        cwd = self.workdir_path(workdir)
        if self.container is None:
            return argv, cwd
        container_argv = self.container.exec_argv(argv, workdir or self.default_workdir)
        return container_argv, self.container.scratch

    async def start(self) -> None:
        """Create the filesystem, start the entrypoint (if any) and arm the timeouts."""
        map_sandbox_path(self.root, SANDBOX_HOME).mkdir(parents=True, exist_ok=True)
        self.workdir_path(None)  # the sandbox's workdir exists from the start, as WORKDIR does
        if self.record.entrypoint_args:
            argv, cwd = self._command(self.record.entrypoint_args, None)
            self.entrypoint = ManagedProcess(argv)
            await self.entrypoint.start(cwd=cwd, env=self.env_for())
            self._spawn(self._watch_entrypoint(self.entrypoint))
        # Without an entrypoint a Modal sandbox just sleeps until terminated or timed out.
        # timeout_secs=0 would mean "unset"; Modal then applies its 300 s default.
        timeout = self.record.timeout_secs or 300
        self._timers.append(asyncio.create_task(self._hard_timeout(timeout)))
        if self.record.idle_timeout_secs:
            self._timers.append(
                asyncio.create_task(self._idle_timeout(self.record.idle_timeout_secs))
            )

    async def finish(
        self, status: int, reason: str, *, exitcode: int = 0, exception: str = ""
    ) -> None:
        """Terminate: record the result, kill every process group, wake all waiters. Idempotent."""
        if self.result is not None:
            return
        self.result = GenericResult(status=status, exitcode=exitcode, exception=exception)  # type: ignore[arg-type]
        rec = self.record
        rec.terminated_at = time.time()
        rec.termination_reason = reason
        rec.result_status = status
        rec.exit_code = exitcode
        for proc in self._processes():
            proc.signal_group(signal.SIGKILL)
        if self.container is not None:
            self.container.stop()
            # /proc/<pid 1>/root is gone (and the pid may be reused): point at the scratch dir,
            # which is removed once the container is gone.
            self.root = self.record.root = self.container.scratch
            self._spawn(self.container.wait_stopped())
        await self._idle_stdout.close()
        await self._idle_stderr.close()
        self.done.set()
        current = asyncio.current_task()
        for timer in self._timers:
            if timer is not current:
                timer.cancel()

    async def wait_done(self, timeout: float | None) -> bool:
        """Wait up to `timeout` seconds for the sandbox to finish; True if it has."""
        if timeout is not None and timeout <= 0:
            return self.done.is_set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)
        return self.done.is_set()

    async def drain(self) -> None:
        """Wait until every process has exited and its output was collected (after `finish`)."""
        for proc in self._processes():
            await proc.wait_drained()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.container is not None:
            await self.container.wait_stopped()

    def _processes(self) -> Iterable[ManagedProcess]:
        if self.entrypoint is not None:
            yield self.entrypoint
        yield from self.execs.values()

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _watch_entrypoint(self, proc: ManagedProcess) -> None:
        await proc.wait()
        # Like a shell, report death by signal N as 128 + N.
        code = 128 + proc.exit_signal if proc.exit_signal is not None else proc.exit_code or 0
        status = (
            GenericResult.GENERIC_STATUS_SUCCESS
            if code == 0
            else GenericResult.GENERIC_STATUS_FAILURE
        )
        await self.finish(status, "exit", exitcode=code)

    async def _hard_timeout(self, seconds: float) -> None:
        if not await self.wait_done(seconds):
            # The client maps TIMEOUT to returncode 124 and SandboxTimeoutError on wait().
            await self.finish(
                GenericResult.GENERIC_STATUS_TIMEOUT, "timeout", exception="Sandbox timed out"
            )

    async def _idle_timeout(self, seconds: float) -> None:
        # Modal counts running execs and stdin writes as activity; the entrypoint's own work is not.
        while not self.done.is_set():
            self._activity.clear()
            if self._active_execs > 0:
                await self._activity.wait()
                continue
            remaining = self._last_activity + seconds - time.monotonic()
            if remaining <= 0:
                # Modal reports GENERIC_STATUS_IDLE_TIMEOUT and leaves exitcode unset (0); the
                # client then reports returncode 0 and wait() does not raise.
                await self.finish(
                    GenericResult.GENERIC_STATUS_IDLE_TIMEOUT,
                    "idle_timeout",
                    exception="Sandbox idle timeout",
                )
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._activity.wait(), remaining)

    def touch(self) -> None:
        """Record activity (resets the idle timeout)."""
        self._last_activity = time.monotonic()
        self._activity.set()

    # ----------------------------------------------------------------------------- execs

    async def start_exec(
        self,
        exec_id: str,
        argv: list[str],
        *,
        workdir: str | None,
        env: Mapping[str, str],
        capture_stdout: bool,
        capture_stderr: bool,
        timeout_secs: int | None,
        pty: PtyOptions | None = None,
    ) -> ManagedProcess:
        """Start an exec; a repeated `exec_id` (client retry) returns the existing process.
        `pty`: under a new pseudo-terminal (stdout and stderr merged into stdout)."""
        if exec_id in self.execs:
            return self.execs[exec_id]
        if self.result is not None or self.terminating:
            raise SandboxFinishedError(self.sandbox_id)
        if pty is not None and self.container is not None:
            # nsenter forks the command and waits for it; were nsenter the terminal's session
            # leader, a typed Ctrl-C would kill it too and hang the terminal up. The command
            # leads its own session on the terminal instead (util-linux, in every Debian image).
            command, cwd = self._command(["setsid", "-c", *argv], workdir)
            pty = dataclasses.replace(pty, take_terminal=False)
        else:
            command, cwd = self._command(argv, workdir)
        proc = ManagedProcess(command, pty=pty)
        # Register before the first await so a concurrent retry with the same id is deduplicated.
        self.execs[exec_id] = proc
        record = ExecRecord(
            exec_id=exec_id,
            argv=list(argv),
            workdir=workdir or self.default_workdir,
            env=dict(env),
            timeout_secs=timeout_secs,
            started_at=time.time(),
        )
        self.record.execs.append(record)
        self._exec_records[exec_id] = record
        self._active_execs += 1
        self.touch()
        try:
            await proc.start(
                cwd=cwd,
                env=self.env_for(env),
                capture_stdout=capture_stdout,
                capture_stderr=capture_stderr,
            )
        finally:
            self._spawn(self._watch_exec(proc, record, timeout_secs))
        if self.result is not None:
            # Terminated while we were spawning: don't leave a process behind.
            proc.signal_group(signal.SIGKILL)
        return proc

    async def _watch_exec(
        self, proc: ManagedProcess, record: ExecRecord, timeout_secs: int | None
    ) -> None:
        try:
            if timeout_secs:
                try:
                    await asyncio.wait_for(proc.wait(), timeout_secs)
                except asyncio.TimeoutError:
                    # The exec's own deadline passed: kill it like the worker would.
                    proc.signal_group(signal.SIGKILL)
                    await proc.wait()
            else:
                await proc.wait()
        finally:
            record.finished_at = time.time()
            record.exit_code = proc.exit_code
            record.exit_signal = proc.exit_signal
            self._active_execs -= 1
            self.touch()


class SandboxRegistry:
    """All sandboxes the emulator created, findable by id, task id and (app, name)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Sandbox] = {}
        self._by_task: dict[str, Sandbox] = {}
        self._last_created_at = 0.0

    def all(self) -> list[Sandbox]:
        return list(self._by_id.values())

    def new_ids(self, v1: bool = False) -> tuple[str, str, float]:
        """Fresh (sandbox_id, task_id, created_at); created_at strictly increases so that list
        pagination, which pages by `created_at < before_timestamp`, never skips a sandbox.
        `v1`: ids shaped like a V1 sandbox's (ids.py)."""
        now = max(time.time(), self._last_created_at + 1e-6)
        self._last_created_at = now
        if v1:
            return ids.new_v1_sandbox_id(), ids.new_v1_task_id(), now
        return ids.new_sandbox_id(), ids.new_task_id(), now

    def add(self, sandbox: Sandbox) -> None:
        self._by_id[sandbox.sandbox_id] = sandbox
        self._by_task[sandbox.task_id] = sandbox

    def get(self, sandbox_id: str) -> Sandbox | None:
        return self._by_id.get(sandbox_id)

    def by_task(self, task_id: str) -> Sandbox | None:
        return self._by_task.get(task_id)

    def by_name(
        self, app_id: str, name: str, *, include_terminated: bool = False
    ) -> Sandbox | None:
        """The running sandbox named `name` in the app; else, if asked, the newest finished one."""
        matches = [
            sb
            for sb in self._by_id.values()
            if sb.record.app_id == app_id and sb.record.name == name
        ]
        for sb in matches:
            if sb.running:
                return sb
        if include_terminated and matches:
            return max(matches, key=lambda sb: sb.record.created_at)
        return None

    def find(self, id_or_name: str) -> Sandbox:
        """Lookup for test helpers: a sandbox id, a task id, or a name (prefers running ones)."""
        sb = self._by_id.get(id_or_name) or self._by_task.get(id_or_name)
        if sb is not None:
            return sb
        named = [s for s in self._by_id.values() if s.record.name == id_or_name]
        if not named:
            raise KeyError(f"no sandbox with id or name {id_or_name!r}")
        running = [s for s in named if s.running]
        return max(running or named, key=lambda s: s.record.created_at)

    def clear(self) -> None:
        self._by_id.clear()
        self._by_task.clear()
