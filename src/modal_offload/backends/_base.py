"""The backend contract: sessions and processes, nothing else.

A backend only provides a named, reusable *session* (a remote sandbox holding a copy of
the workspace) and *processes* in it with separate byte streams and an exit code. Sync,
metering and heavy offload are built on `Session.exec` once, for every backend.

Conventions every backend keeps (the contract suite in tests/contract checks them):
- `Process.wait()` returns the remote exit status, 128+N when the process died of signal N.
- stdout/stderr chunks are the exact bytes written, in order, delivered as they arrive.
- `close_stdin()` gives the remote process EOF; a process never waits on a stdin nobody writes.
- `Process.signal(sig)` reaches the remote process *group*, so a shell's children stop too.
- Errors of the underlying library surface as `errors.BackendError` / `BackendUnavailable`.
- With `pty=PtySpec(...)` the process runs as the session leader of a new pseudo-terminal of
  that size and TERM (as Modal's `PTYInfo` does): stdout carries everything the terminal
  shows (stdout and stderr merged, with the terminal's own echo and CRLF), stderr is empty,
  stdin is what is typed, byte for byte, and `close_stdin()` does nothing (a terminal's EOF
  is the Ctrl-D byte, which the remote line discipline interprets).
"""

from __future__ import annotations

import abc
import importlib
import signal as _signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..errors import OffloadError
    from ..image.spec import ImageSpec

from .. import isolated

# Asked right before a sandbox is created: (session name, wanted seconds) -> the seconds of
# life the budget grants it (its provider-side timeout); raises BudgetExhausted. The meter
# (meter.SandboxMeter.grant) implements it; backends never touch the ledger (issue 15).
Grant = Callable[[str, int], int]


@dataclass(frozen=True)
class SessionSpec:
    """What a session must look like; backends map it to their own resources."""

    name: str  # stable per workspace and purpose, e.g. "mo-3f2a9c1b-exec"
    workspace: Path  # the local root; for naming and tags only, never read by backends
    app_name: str = "modal-offload"
    cpu: float = 6.0
    memory_mb: int = 14 * 1024
    timeout_seconds: int = 3600  # wanted provider-side cap; `grant` may lower it at creation
    idle_timeout_seconds: int = 300
    gpu: str | None = None  # Modal's `TYPE[:N]`, already normalized (pricing.normalize_gpu)
    apt_packages: tuple[str, ...] = ()
    pip_packages: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    # How long a running command may stay out of reach before it is given up (issue 19).
    resume_grace_seconds: float = 180.0
    grant: Grant | None = field(default=None, compare=False, repr=False)
    image: ImageSpec | None = None  # what the image holds (issue 12); None: the bare base
    build_output: bool = False  # show image build progress and logs (stderr is a terminal)
    # A new session starts from this snapshot (`Session.snapshot()`) instead of the bare
    # image (issue 18: one upload for many sandboxes); "" for none.
    seed: str = ""

    def granted_timeout(self) -> int:
        """The timeout a new sandbox gets: what the budget grants, never more than wanted."""
        if self.grant is None:
            return int(self.timeout_seconds)
        return min(int(self.timeout_seconds), self.grant(self.name, int(self.timeout_seconds)))


@dataclass(frozen=True)
class PtySpec:
    """A remote pseudo-terminal: the local window size and terminal type at start."""

    rows: int = 24
    cols: int = 80
    term: str = "xterm-256color"
    colorterm: str = ""


@dataclass
class SessionInfo:
    backend: str
    name: str
    id: str
    alive: bool
    created_at: float | None = None  # unix seconds
    last_used_at: float | None = None
    root: str = ""
    detail: dict[str, object] = field(default_factory=dict)


class Process(abc.ABC):
    """A running remote process."""

    # Bytes of input that could not be delivered (the connection was lost): reported.
    stdin_dropped: int = 0
    # Whether `wait()` may be left to a background thread of a process that lives on (the
    # session channel's: an event, no network call). A backend's wait is RPCs, which must
    # not be cut off by the interpreter's exit (the modal client then warns on stderr).
    background_wait = False
    # Whether a command may be started `after` this one (a sync up's apply) before its
    # result is known: the session channel's, whose agent orders them (Session.exec_after).
    orders_after = False

    @abc.abstractmethod
    def write_stdin(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def close_stdin(self) -> None: ...

    @abc.abstractmethod
    def stdout_chunks(self) -> Iterator[bytes]:
        """Yield stdout bytes as they arrive, until EOF. Call once."""

    @abc.abstractmethod
    def stderr_chunks(self) -> Iterator[bytes]:
        """Yield stderr bytes as they arrive, until EOF. Call once."""

    @abc.abstractmethod
    def wait(self) -> int:
        """Block until exit; 128+N for death by signal N."""

    @abc.abstractmethod
    def signal(self, sig: int = _signal.SIGTERM) -> None:
        """Deliver `sig` to the remote process group, also after the leader has exited
        (its stragglers); a no-op once the whole group is gone. Must not block long: it
        may be called from a signal handler."""


    def resize(self, rows: int, cols: int) -> bool:
        """Give the command's terminal a new window size (the program sees SIGWINCH);
        False where this process has no terminal or its backend cannot resize one (the
        Modal client's own PTY exec: its size is the size at start)."""
        return False

    def stream_failure(self) -> OffloadError | None:
        """Once both output streams have ended: why some output was lost (the connection
        stayed down past the resume grace), else None. Checked after `wait()`, because a
        stream may give up after the exit code arrived."""
        return None


class Session(abc.ABC):
    backend_name: str
    name: str
    id: str
    root: str  # absolute remote path of the workspace copy
    state_dir: str  # absolute remote path for our bookkeeping, outside `root`
    python: str  # remote interpreter that can run `-m modal_offload...`
    fresh: bool  # True when created by this open: nothing of the workspace is there yet
    # Lifetime, as the backend knows it (unix seconds): what the meter charges.
    created_at: float
    deadline: float  # the provider-side end at the latest
    # Sandboxes this open found gone or replaced under the same name, with the end the
    # backend knows (a termination it did); others are charged up to their deadline.
    ended: Mapping[str, float] = MappingProxyType({})
    # A folder holding our package when it is not in the interpreter's site-packages
    # (Modal's add_local_python_source puts it in /root); "" when it is installed.
    package_dir: str = ""
    # Sync payloads to and from this session are compressed where it pays (sync/compress.py):
    # over a network link; not over a local pipe, which moves GB/s while zlib does ~60 MB/s.
    compress_sync: bool = True

    def module_argv(self, module: str, *args: str) -> list[str]:
        """argv running one of our modules remotely, isolated from the workspace it starts
        in (see `isolated`)."""
        return isolated.argv(self.python, self.package_dir, module, *args)

    @abc.abstractmethod
    def exec(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
             pty: PtySpec | None = None) -> Process:
        """Start `argv` (unchanged, no shell) in remote folder `cwd` with exactly `env`
        added to the session's base environment; under a pseudo-terminal when `pty`."""

    def exec_after(self, first: Process | None, argv: Sequence[str], *, cwd: str,
                   env: Mapping[str, str], pty: PtySpec | None = None,
                   collect: Sequence[str] | None = None) -> Callable[[], Process]:
        """Start `argv` as `exec` does, but only once `first` succeeded: a sync up's apply
        whose input was sent and whose result the caller reads next (`first.orders_after`;
        None: nothing to wait for). Returns the start, to call once that result is known
        good; it gives the command's Process. `collect`: the sync agent's collect
        arguments, which a session may run right after the command's exit (the process's
        `prepared_collect`, for sync back).

        Here `first` has already ended and nothing is pipelined: the command starts when
        the start is called. The session channel sends both in one write instead
        (channel/client.py)."""
        return lambda: self.exec(argv, cwd=cwd, env=env, pty=pty)

    def snapshot(self) -> str:
        """A handle a new session can start from (SessionSpec.seed): this session's whole
        filesystem, the workspace copy and our state included. Backends without snapshots
        raise NotImplementedError, and callers sync each session instead."""
        raise NotImplementedError

    @abc.abstractmethod
    def terminate(self) -> None: ...

    @abc.abstractmethod
    def info(self) -> SessionInfo: ...

    def before_collect(self) -> str | None:
        """A sync back is about to scan the remote tree: the session channel resets its
        change tracking here and returns the token of the list of changed paths it left
        for the collect (channel/agent.py); a plain session has none: the collect walks."""
        return None


class Backend(abc.ABC):
    name: str

    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """Cheap check (no network, no heavy imports): None when usable, else why not
        and how to fix it, in one line."""

    def unreachable_reason(self, timeout: float) -> str | None:
        """None when the service answers within `timeout` seconds, else why not in one
        line. Called before any work; a backend on this machine is always reachable."""
        return None

    @abc.abstractmethod
    def open_session(self, spec: SessionSpec) -> Session:
        """Reuse the live session named `spec.name`, or create it (fresh=True). A dead or
        timed-out one is replaced transparently."""

    def end_session(self, session: Session) -> None:
        """Terminate `session`, one this backend opened, so that no later open reuses it."""
        session.terminate()

    @abc.abstractmethod
    def find_session(self, spec: SessionSpec) -> Session | None:
        """The live session named `spec.name`, without creating one."""

    @abc.abstractmethod
    def list_sessions(self, app_name: str) -> list[SessionInfo]: ...

    def drop_snapshot(self, handle: str) -> None:
        """Free a snapshot nothing will start from any more (a no-op where it expires)."""
        return None


_REGISTRY = {
    "local": "modal_offload.backends.local:LocalBackend",
    "modal": "modal_offload.backends.modal:ModalBackend",
}


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def get_backend(name: str) -> Backend:
    """Import lazily: the Modal backend's import of `modal` costs ~0.35 s per process."""
    from ..errors import BadInput

    try:
        target = _REGISTRY[name]
    except KeyError:
        raise BadInput(f"unknown backend {name!r}",
                       f"choose one of: {', '.join(backend_names())}") from None
    module_name, _, attr = target.partition(":")
    backend_cls = getattr(importlib.import_module(module_name), attr)
    backend: Backend = backend_cls()
    return backend
