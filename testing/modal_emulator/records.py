"""What the emulator recorded, for tests to inspect.

These are plain dataclasses owned by the emulator's event loop. Read them through
`ModalEmulator.sandboxes()` / `.sandbox(...)`, which hand out copies taken on the loop thread, so a
test thread never sees a half-updated record.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from modal_proto import api_pb2


@dataclass
class ExecRecord:
    exec_id: str
    argv: list[str]
    workdir: str  # sandbox path as requested (or the sandbox's default)
    env: dict[str, str]  # env the client sent for this exec (secrets resolved), not the full env
    timeout_secs: int | None
    started_at: float
    finished_at: float | None = None
    exit_code: int | None = None
    exit_signal: int | None = None


@dataclass
class SandboxRecord:
    sandbox_id: str
    task_id: str
    name: str | None
    app_id: str
    app_name: str | None
    image_id: str
    entrypoint_args: list[str]
    cpu: float | None  # cores requested (milli_cpu / 1000)
    cpu_limit: float | None
    memory_mb: int | None
    memory_limit_mb: int | None
    timeout_secs: int
    idle_timeout_secs: int | None
    workdir: str | None  # as requested; None means the default (/root)
    tags: dict[str, str]  # current tags (SandboxTagsSetV2 updates them)
    env: dict[str, str]  # sandbox-level env from `env=` and secrets, as the client sent them
    secret_ids: list[str]
    mount_ids: list[str]
    root: Path  # scratch directory standing in for the sandbox's "/"
    created_at: float
    request: api_pb2.SandboxCreateV2Request = field(repr=False)
    terminated_at: float | None = None
    # One of: "exit" (entrypoint exited), "terminate" (SandboxTerminateV2), "timeout",
    # "idle_timeout", "killed" (fault injection), "reset" (emulator reset/stop).
    termination_reason: str | None = None
    result_status: int = api_pb2.GenericResult.GENERIC_STATUS_UNSPECIFIED
    exit_code: int | None = None
    execs: list[ExecRecord] = field(default_factory=list)

    @property
    def exec_count(self) -> int:
        return len(self.execs)

    @property
    def running(self) -> bool:
        return self.terminated_at is None

    def snapshot(self) -> SandboxRecord:
        """A deep copy that later emulator activity will not mutate."""
        clone = dataclasses.replace(self, execs=[dataclasses.replace(e) for e in self.execs])
        clone.tags = dict(self.tags)
        clone.env = dict(self.env)
        clone.request = copy.deepcopy(self.request)
        return clone


@dataclass(frozen=True)
class CallRecord:
    """One RPC received, in arrival order."""

    service: str  # "ModalClient" or "TaskCommandRouter"
    method: str
    at: float
    implemented: bool
    injected_status: int | None = None  # grpclib Status value if a fault was injected
    ended_at: float | None = None  # when the handler returned (None while still running)
