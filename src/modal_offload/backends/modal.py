"""The Modal backend: one named `modal.Sandbox` per session. `import modal` happens only here,
lazily inside methods, because it costs ~0.35 s and ~46 MB per process.

Sessions
  `open_session(spec)` looks the sandbox up by name (`Sandbox.from_name`) and reuses it, or
  creates it (`fresh=True`) from an image built from the configuration (never per command):
  debian_slim + apt/pip packages + `pathspec` + our own package (`add_local_python_source`),
  which the remote sync agent and the heavy worker need. A sandbox that is gone (died, idled
  out, timed out, terminated) is replaced transparently; its id changes, and the sync engine
  keys its cache on `session.id`, so the whole workspace is sent again.

Budget cap
  Right before creating a sandbox the backend asks `spec.granted_timeout()`: the meter's lease
  (meter.py) grants at most what the budget leaves once every live sandbox's lease is counted;
  it becomes the sandbox's provider-side `timeout`, so the cap holds even if the laptop dies.
  Creation time and timeout are written into the sandbox's tags (`mo-created`, `mo-timeout`)
  so any later process can compute its deadline: a live sandbox whose deadline lies more than
  `DEADLINE_SLACK_SECONDS` past `now + spec.timeout_seconds` (budget spent elsewhere since) is
  terminated and replaced with one that honours the smaller cap.

Signals
  A Modal exec has no signal API. Each command runs under a POSIX-sh wrapper that writes its
  pid to a file under `state_dir` and `exec`s the command, first moving it into its own session
  with `setsid` unless it already leads its process group; so pid == pgid and the exit status
  stays the command's own (the client reports 128+N for death by signal N). `signal(sig)`
  starts a second exec, `kill -SIG -- -PGID`, and does not wait for it. Once the leader has
  exited after a signal, whatever is left of its group (e.g. a background job that ignores
  SIGINT, as non-interactive shells make them) is killed, so Ctrl-C really stops the command.
  The wrapper's paths are relative to the exec's working directory, because only working
  directories (not argv) name sandbox paths reliably (the in-repo emulator maps those alone).
  A command's folder under the workspace may not exist remotely (an ignored or never-synced
  folder), and an exec whose workdir is missing does not start at all: such execs start in
  the workspace root and the wrapper creates and enters the folder first.

Metering: this backend only reports lifetimes (`created_at`, `deadline`, and in `ended` the
sandboxes it found gone or replaced, with their end when known: `_modal_records`); the meter
(meter.py) charges them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import posixpath
import signal as _signal
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..credentials import fix as credentials_fix
from ..credentials import missing_reason
from ..errors import BackendError, BackendUnavailable, OffloadError
from ..fileio import exclusive
from . import _modal_build, _modal_image
from . import _modal_records as records
from ._base import Backend, Process, PtySpec, Session, SessionInfo, SessionSpec

ROOT = "/workspace"
STATE_DIR = "/var/lib/modal-offload"
PIDS_DIR = f"{STATE_DIR}/pids"
REMOTE_PYTHON = "python"
PACKAGE_DIR = "/root"  # add_local_python_source puts our package here (modal/mount.py:39,724)
# How far past the budget cap a live sandbox's deadline may lie before it is replaced: covers
# the rounding of whole-second timeouts and heartbeat granularity, not real overspend.
DEADLINE_SLACK_SECONDS = 5.0
TAG_CREATED = "mo-created"
TAG_TIMEOUT = "mo-timeout"
TAG_IDLE = "mo-idle-timeout"
RESET_HINT = "retry; `modal-offload session stop` resets the session"
# Per stdin write: well under the client's 16 MiB (modal/io_streams.py:636), so memory per
# write stays bounded; 2 MiB is the client's own limit for sandbox stdin (io_streams.py:633).
STDIN_CHUNK_BYTES = 2 * 1024 * 1024
# How often a running wait asks the control plane whether the sandbox still exists.
WATCH_SECONDS = 5.0
# After the control plane says the sandbox ended, how long the router may take to say so.
GONE_GRACE_SECONDS = 2.0
# Deadline of the short housekeeping execs (mkdir at creation, the signal sender).
HOUSEKEEPING_TIMEOUT = 60

log = logging.getLogger(__name__)

# $0: pid file (relative to the working directory); $1: folder to enter (relative, "." for
# none), created if missing; the rest: the command. pid == pgid afterwards.
_ENTER = ('echo $$ > "$0" || exit 125; '
          '[ "$1" = . ] || { mkdir -p -- "$1" && cd -- "$1"; } || exit 125; shift; ')
_WRAPPER = (_ENTER + 'read -r _ _ _ _ pg _ < /proc/$$/stat; '
            '[ "$pg" = "$$" ] || ! command -v setsid >/dev/null || exec setsid "$@"; '
            'exec "$@"')
# Under a terminal the command must keep it as its controlling terminal, so no `setsid`
# (that would start a session without one: no Ctrl-C from the line discipline, no job
# control). Modal makes a PTY exec the session leader of its terminal (as the emulator
# does; unverified on Modal), so its pid is its group's id as the killer expects.
_PTY_WRAPPER = _ENTER + 'exec "$@"'
# $0: pid file name (in PIDS_DIR); $1: signal name. Waits briefly for a wrapper that has not
# written its pid yet; after a catchable signal, sweeps the group once the leader is gone.
_KILLER = ('sig=$1; i=0; while [ ! -s "$0" ]; do i=$((i+1)); [ $i -gt 50 ] && exit 0; '
           'sleep 0.1; done; read -r pg < "$0"; kill -s "$sig" -- "-$pg" 2>/dev/null || exit 0; '
           '[ "$sig" = KILL ] && exit 0; i=0; while kill -0 "$pg" 2>/dev/null; do '
           'i=$((i+1)); [ $i -gt 600 ] && exit 0; sleep 0.1; done; '
           'kill -s KILL -- "-$pg" 2>/dev/null; exit 0')


def _modal() -> Any:
    import modal  # the only import of modal in the package: ~0.35 s, so never at top level

    if "MODAL_LOGLEVEL" not in os.environ:
        # The client warns on stderr while it retries (e.g. an unreachable worker); we act on
        # those situations ourselves and report them in one line. MODAL_LOGLEVEL restores it.
        logging.getLogger("modal-client").setLevel(logging.ERROR)
    return modal


def translate(exc: BaseException, doing: str) -> OffloadError:
    """The one place Modal's exceptions become ours (one line each, with what to do)."""
    if isinstance(exc, OffloadError):
        return exc
    modal = _modal()
    detail = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    if isinstance(exc, modal.exception.AuthError):
        return BackendUnavailable(f"Modal rejected the credentials while {doing}",
                                  credentials_fix())
    if isinstance(exc, (modal.exception.ConnectionError, ConnectionError, OSError)):
        return BackendError(f"cannot reach Modal while {doing} ({detail})",
                            "check the network and retry")
    if isinstance(exc, modal.exception.SandboxTimeoutError):
        return BackendError(f"the Modal sandbox reached its time limit while {doing}",
                            "the daily budget or MODAL_TIMEOUT_SECONDS ran out")
    if isinstance(exc, modal.exception.SandboxTerminatedError):
        return BackendError(f"the Modal sandbox was terminated while {doing}", RESET_HINT)
    return BackendError(f"Modal failed while {doing}: {detail}", RESET_HINT)


@contextlib.contextmanager
def _modal_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except OffloadError:
        raise
    except Exception as exc:
        raise translate(exc, doing) from exc


class ModalProcess(Process):
    def __init__(self, session: ModalSession, proc: Any, pid_name: str,
                 pty: bool = False) -> None:
        self._session = session
        self._pty = pty
        self._proc = proc
        self._pid_name = pid_name
        self._stdin_lock = threading.Lock()
        self._stdin_closed = False
        self._stream_error: BaseException | None = None
        self._exit: int | None = None

    def write_stdin(self, data: bytes) -> None:
        with self._stdin_lock:
            if self._stdin_closed:
                return
            view = memoryview(data)
            try:
                for start in range(0, len(view), STDIN_CHUNK_BYTES):
                    self._proc.stdin.write(view[start:start + STDIN_CHUNK_BYTES])
                    self._proc.stdin.drain()
            except Exception as exc:
                # Like a closed pipe, the rest of the input is lost; but the remote end must
                # not wait for it: end the channel with EOF (best effort; if the sandbox is
                # gone, wait() reports that).
                log.debug("stdin write failed (%s); sending EOF", exc)
                self._stdin_closed = True
                with contextlib.suppress(Exception):
                    self._proc.stdin.write_eof()
                    self._proc.stdin.drain()

    def close_stdin(self) -> None:
        if self._pty:
            return  # a terminal's EOF is the typed Ctrl-D byte (backends/_base.py)
        with self._stdin_lock:
            if self._stdin_closed:
                return
            self._stdin_closed = True
            with contextlib.suppress(Exception):
                self._proc.stdin.write_eof()
                self._proc.stdin.drain()

    def _chunks(self, reader: Any) -> Iterator[bytes]:
        try:
            for chunk in reader:
                if chunk:
                    yield bytes(chunk)
        except Exception as exc:
            # Pump threads cannot raise to the caller: keep it for wait() to report.
            self._stream_error = exc

    def stdout_chunks(self) -> Iterator[bytes]:
        return self._chunks(self._proc.stdout)

    def stderr_chunks(self) -> Iterator[bytes]:
        return self._chunks(self._proc.stderr)

    def wait(self) -> int:
        if self._exit is not None:
            return self._exit
        code = self._watched_wait()
        with contextlib.suppress(OffloadError, OSError):
            # Bookkeeping only: a lock timeout must not turn a result into an error.
            records.mark_used(self._session.name, self._session.id)
        if code == -1:
            # The exec's deadline (just past the sandbox's own) passed without an answer:
            # the client's convention for that is -1 (modal/container_process.py:181-185).
            ended = self._session.ended_code()
            if ended is not None:
                raise self._session.died_error(ended)
            raise BackendError(f"the Modal sandbox {self._session.id} stopped answering",
                               RESET_HINT)
        if code == 137 or self._stream_error is not None:
            # A killed container also ends its execs with SIGKILL: tell that apart from a
            # command that was itself killed (e.g. out of memory), which is its own status.
            ended = self._session.ended_code()
            if ended is not None:
                raise self._session.died_error(ended)
        self._exit = code
        return code

    def _watched_wait(self) -> int:
        """The exit status, or an error once the sandbox is gone.

        The client's wait retries an unreachable worker until the exec deadline, so it runs in
        a helper thread while this one asks the control plane every WATCH_SECONDS whether the
        sandbox still exists.
        """
        outcome: list[int | BaseException] = []

        def target() -> None:
            try:
                outcome.append(int(self._proc.wait()))
            except BaseException as exc:  # handed to the caller below
                outcome.append(exc)

        waiter = threading.Thread(target=target, daemon=True, name="modal-exec-wait")
        waiter.start()
        while True:
            waiter.join(WATCH_SECONDS)
            if not waiter.is_alive():
                break
            ended = self._session.ended_code()
            if ended is not None:
                waiter.join(GONE_GRACE_SECONDS)
                if waiter.is_alive():  # the worker vanished with it: nothing will answer
                    raise self._session.died_error(ended)
                break
        result = outcome[0]
        if isinstance(result, BaseException):
            # Once the sandbox has ended its router says NOT_FOUND: report the sandbox.
            ended = self._session.ended_code()
            if ended is not None:
                raise self._session.died_error(ended) from result
            raise translate(result, "waiting for the command") from result
        return result

    def signal(self, sig: int = _signal.SIGTERM) -> None:
        # Also after the leader exited: its group's stragglers must stop too (_base.py).
        name = _signal.Signals(sig).name.removeprefix("SIG")
        # Never block the caller (it may be a signal handler): start the kill and move on.
        threading.Thread(target=self._send, args=(name,), daemon=True).start()

    def _send(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self._session.sandbox.exec("sh", "-c", _KILLER, self._pid_name, name,
                                       workdir=PIDS_DIR, text=False,
                                       timeout=HOUSEKEEPING_TIMEOUT)


def _pty_info(pty: PtySpec | None) -> Any:
    """The PTYInfo `Sandbox.exec(pty=True)` would send (modal/sandbox/_common.py:307,
    modal/_output/pty.py:31), but with the *client's* window size and TERM: `pty=True` reads
    them from this process's own terminal and environment, which in the session host are
    not the user's. `Sandbox._exec` takes it without the deprecation warning of
    `exec(pty_info=...)` (modal/sandbox/_sandbox.py:1248)."""
    if pty is None:
        return None
    from modal_proto import api_pb2

    return api_pb2.PTYInfo(
        enabled=True, winsz_rows=pty.rows, winsz_cols=pty.cols, env_term=pty.term,
        env_colorterm=pty.colorterm, pty_type=api_pb2.PTYInfo.PTY_TYPE_SHELL,
        no_terminate_on_idle_stdin=True)


class ModalSession(Session):
    backend_name = "modal"

    def __init__(self, sandbox: Any, record: records.SandboxRecord, fresh: bool,
                 gpu: str | None = None) -> None:
        self.gpu = gpu
        self.sandbox = sandbox
        self.record = record
        self.name = record.name
        self.id = record.sandbox_id
        self.root = ROOT
        self.state_dir = STATE_DIR
        self.python = REMOTE_PYTHON
        self.package_dir = PACKAGE_DIR  # module_argv runs -I, which ignores PYTHONPATH
        self.fresh = fresh
        self.created_at = record.created_at
        self.deadline = record.deadline

    def exec_timeout(self) -> int:
        """An exec's deadline: the command cannot outlive its sandbox, so a little past the
        sandbox's own end bounds every wait on the worker without ever cutting a command short."""
        return max(1, math.ceil(self.record.deadline - time.time() + DEADLINE_SLACK_SECONDS))

    def exec(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
             pty: PtySpec | None = None) -> Process:
        if "PYTHONPATH" in env:
            # The workspace's folders first (issue 12), then the sandbox's own PYTHONPATH.
            env = {**env, "PYTHONPATH": f"{env['PYTHONPATH']}:{PACKAGE_DIR}"}
        pid_name = uuid.uuid4().hex
        workdir, enter = cwd, "."
        if cwd.startswith(self.root + "/"):
            workdir, enter = self.root, posixpath.relpath(cwd, self.root)
        pid_file = posixpath.relpath(f"{PIDS_DIR}/{pid_name}", workdir)
        wrapper = _WRAPPER if pty is None else _PTY_WRAPPER
        with _modal_errors("starting the command"):
            try:
                proc = self.sandbox._exec("sh", "-c", wrapper, pid_file, enter, *argv,
                                          workdir=workdir, env=dict(env), text=False,
                                          timeout=self.exec_timeout(),
                                          pty_info=_pty_info(pty))
            except _modal().exception.Error as exc:
                ended = self.ended_code()
                if ended is not None:
                    raise self.died_error(ended) from exc
                raise
        with contextlib.suppress(OffloadError, OSError):
            records.mark_started(self.name, self.id)  # bookkeeping only, as in wait()
        return ModalProcess(self, proc, pid_name, pty=pty is not None)

    def ended_code(self) -> int | None:
        """The sandbox's own exit code once it has ended, else None (also if unknown)."""
        try:
            code = self.sandbox.poll()
        except Exception:
            return None
        return None if code is None else int(code)

    def died_error(self, code: int) -> BackendError:
        why = ("reached its provider-side time limit (the daily budget or "
               "MODAL_TIMEOUT_SECONDS)" if code == 124 else "was terminated")
        return BackendError(f"the Modal sandbox {self.id} {why} while the command ran; "
                            "nothing was synced back", "run the command again")

    def terminate(self) -> None:
        with exclusive(records.lock_path(self.name)), _modal_errors("terminating the sandbox"):
            # Waited: the name stays taken until the sandbox has finished, and the next
            # command must be able to create a new one under it.
            self.sandbox.terminate(wait=True)

    def info(self) -> SessionInfo:
        record = records.load(self.name) or self.record
        alive = self.ended_code() is None
        return SessionInfo(
            backend="modal", name=self.name, id=self.id, alive=alive,
            created_at=record.created_at, last_used_at=record.last_used, root=self.root,
            detail={"sandbox_id": self.id, "created_at": record.created_at,
                    "last_used": record.last_used, "in_flight": record.in_flight,
                    "timeout_seconds": record.timeout_seconds,
                    "deadline": record.deadline,
                    "idle_timeout_seconds": record.idle_timeout_seconds,
                    "gpu": self.gpu},
        )


def _tags(spec: SessionSpec, created: float) -> dict[str, str]:
    tags = {str(k): str(v) for k, v in spec.tags.items()}
    tags.update({TAG_CREATED: f"{created:.3f}", TAG_TIMEOUT: str(int(spec.timeout_seconds)),
                 TAG_IDLE: str(int(spec.idle_timeout_seconds))})
    return tags


def _record_from_tags(name: str, sandbox_id: str, tags: Mapping[str, str],
                      spec: SessionSpec) -> records.SandboxRecord:
    """A sandbox this machine has no record of (created elsewhere): trust its tags."""
    now = time.time()
    try:
        created = float(tags[TAG_CREATED])
        timeout = int(tags[TAG_TIMEOUT])
    except (KeyError, ValueError):
        # No tags of ours: assume the worst, so the cap check replaces it.
        created, timeout = now, 1 << 30
    idle = int(tags.get(TAG_IDLE, spec.idle_timeout_seconds) or spec.idle_timeout_seconds)
    return records.SandboxRecord(name=name, sandbox_id=sandbox_id, created_at=created,
                                 timeout_seconds=timeout, idle_timeout_seconds=idle,
                                 last_used=now)


def build_image(spec: SessionSpec) -> Any:
    """The session's image from its ImageSpec (issue 12; the mapping: _modal_image.py)."""
    from ..image.spec import minimal

    image = spec.image or minimal(apt=spec.apt_packages, pip=spec.pip_packages)
    return _modal_image.build(_modal(), image, spec.workspace)


def _build(spec: SessionSpec, app: Any) -> Any:
    """Built (or found in Modal's cache) before the sandbox is created; see _modal_build."""
    image_hash = spec.image.hash if spec.image is not None else "base"
    return _modal_build.build(_modal(), build_image(spec), app, show=spec.build_output,
                              image_hash=image_hash)


class ModalBackend(Backend):
    name = "modal"

    def unavailable_reason(self) -> str | None:
        return missing_reason()

    def _lookup(self, spec: SessionSpec) -> Any | None:
        modal = _modal()
        try:
            return modal.Sandbox.from_name(spec.app_name, spec.name)
        except modal.exception.NotFoundError:
            return None

    def _known(self, spec: SessionSpec, sandbox: Any) -> records.SandboxRecord:
        record = records.load(spec.name)
        if record is not None and record.sandbox_id == sandbox.object_id:
            return record
        with _modal_errors("reading the sandbox's tags"):
            tags = sandbox.get_tags()
        return _record_from_tags(spec.name, sandbox.object_id, tags, spec)

    def find_session(self, spec: SessionSpec) -> Session | None:
        with _modal_errors("looking up the session"):
            sandbox = self._lookup(spec)
            if sandbox is None:
                return None
            return ModalSession(sandbox, self._known(spec, sandbox), fresh=False,
                                gpu=spec.gpu)

    def open_session(self, spec: SessionSpec) -> Session:
        ended: dict[str, float] = {}
        with exclusive(records.lock_path(spec.name)), _modal_errors("opening the session"):
            session = self._reuse(spec, ended)
        if session is not None:
            session.ended = ended
            return session
        # The first build of an image can take minutes: never under the session lock, or
        # every concurrent first command would give up on it (fileio.LOCK_TIMEOUT_SECONDS).
        # Identical builds started by several processes are one build on Modal's side.
        with _modal_errors("building the image"):
            app, image = self._built_image(spec)
        with exclusive(records.lock_path(spec.name)), _modal_errors("opening the session"):
            # Someone may have created it while the image was building.
            session = self._reuse(spec, ended) or self._create(spec, app, image)
        session.ended = ended
        return session

    def _reuse(self, spec: SessionSpec, ended: dict[str, float]) -> ModalSession | None:
        """The live session if its deadline fits the wanted timeout; else clear the way for
        a new one, noting in `ended` the sandboxes gone and their end when known. Holds the
        session lock."""
        now = time.time()
        previous = records.load(spec.name)
        sandbox = self._lookup(spec)
        if sandbox is not None:
            record = self._known(spec, sandbox)
            if record.deadline <= now + spec.timeout_seconds + DEADLINE_SLACK_SECONDS:
                record.idle_timeout_seconds = spec.idle_timeout_seconds
                records.store(record)
                return ModalSession(sandbox, record, fresh=False, gpu=spec.gpu)
            # Its deadline lies past what is wanted now (MODAL_TIMEOUT_SECONDS was lowered):
            # it makes way for a sandbox with a smaller timeout. Waited, because it holds its
            # name until it has finished.
            sandbox.terminate(wait=True)
            ended[record.sandbox_id] = time.time()
        elif previous is not None:
            end = previous.known_end()
            if end is not None:
                ended[previous.sandbox_id] = min(end, now)
        return None

    def _built_image(self, spec: SessionSpec) -> tuple[Any, Any]:
        modal = _modal()
        app = modal.App.lookup(spec.app_name, create_if_missing=True)
        return app, _build(spec, app)

    def _create(self, spec: SessionSpec, app: Any, image: Any) -> ModalSession:
        modal = _modal()
        timeout = spec.granted_timeout()  # the meter's lease; raises BudgetExhausted
        spec = dataclasses.replace(spec, timeout_seconds=timeout)
        created = time.time()
        try:
            sandbox = modal.Sandbox.create(
                app=app, name=spec.name, image=image, cpu=spec.cpu,
                memory=spec.memory_mb, gpu=spec.gpu, timeout=timeout,
                idle_timeout=int(spec.idle_timeout_seconds), workdir=ROOT,
                env={"PYTHONPATH": PACKAGE_DIR},  # for the user's commands; ours: package_dir
                tags=_tags(spec, created))
        except modal.exception.AlreadyExistsError as exc:
            # Its holder was created or terminated (without waiting) by another machine.
            session = self._reuse(spec, {})
            if session is None:
                raise BackendError(f"the Modal sandbox name {spec.name} is still taken by a "
                                   "sandbox that is shutting down",
                                   "retry in a few seconds") from exc
            return session
        record = records.SandboxRecord(
            name=spec.name, sandbox_id=sandbox.object_id, created_at=created,
            timeout_seconds=int(spec.timeout_seconds),
            idle_timeout_seconds=int(spec.idle_timeout_seconds), last_used=time.time())
        records.store(record)
        # The wrapper's pid files need their folder; "/" as cwd keeps the path relative.
        code = sandbox.exec("mkdir", "-p", PIDS_DIR.lstrip("/"), workdir="/",
                            timeout=HOUSEKEEPING_TIMEOUT).wait()
        if code != 0:
            raise BackendError(f"could not prepare the Modal sandbox (mkdir exit {code})",
                               RESET_HINT)
        return ModalSession(sandbox, record, fresh=True, gpu=spec.gpu)

    def list_sessions(self, app_name: str) -> list[SessionInfo]:
        modal = _modal()
        out: list[SessionInfo] = []
        with _modal_errors("listing sessions"):
            try:
                app = modal.App.lookup(app_name)
            except modal.exception.NotFoundError:
                return []
            for sandbox in modal.Sandbox.list(app_id=app.app_id, tags={"modal-offload": "1"}):
                tags = sandbox.get_tags()
                created = float(tags.get(TAG_CREATED, 0) or 0) or None
                out.append(SessionInfo(backend="modal", name="", id=sandbox.object_id,
                                       alive=True, created_at=created, root=ROOT,
                                       detail={"sandbox_id": sandbox.object_id, "tags": tags}))
        return out


def billing_report(start: Any, end: Any) -> list[tuple[Any, float, dict[str, str]]]:
    """Modal's hourly cost of our sandboxes in [start, end) (UTC datetimes): (interval start,
    dollars, tags) per sandbox and hour. The pinned client's `Workspace.billing.report`
    (modal/_workspace.py:378-442, RPC WorkspaceBillingReport) with our tags."""
    modal = _modal()
    with _modal_errors("reading Modal's billing report"):
        items = modal.Workspace.from_context().billing.report(
            start=start, end=end, resolution="h", tag_names=["modal-offload", "workspace"])
        return [(item.interval_start, float(item.cost), dict(item.tags)) for item in items
                if item.tags.get("modal-offload") == "1"]
