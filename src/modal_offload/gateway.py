"""The exec pipeline every remote command and heavy call goes through, once:

    budget check -> open/reuse session -> sync up -> run (streams, signals, budget timer)
    -> sync back -> meter

A library API: no printing and no `sys.exit` here, so a long-lived process (the session
host) can run many of these at once. Callers turn `RunReport` into output and exit codes.
"""

from __future__ import annotations

import contextlib
import os
import signal as _signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import config, paths
from .backends._base import Backend, Grant, Process, PtySpec, Session, SessionSpec
from .budget import Ledger, why
from .config import Settings
from .errors import (
    BackendError,
    BackendTooSlow,
    BackendUnavailable,
    BudgetExhausted,
    OffloadError,
    StoppedWaiting,
    TooManyFiles,
)
from .fileio import exclusive
from .image import cache as image_cache
from .image import identity, programs
from .image.spec import ImageSpec
from .meter import Budget, SandboxMeter
from .ui import once
from .workspace import Workspace, refuse_unsafe_root

if TYPE_CHECKING:
    from .sync.client import SyncBackReport, SyncUpReport

Sink = Callable[[bytes], None]
_CHUNK = 64 * 1024
KILL_GRACE_SECONDS = 5.0
# After a hang-up (the client vanished or its terminal closed) the remote group gets this
# long to exit on SIGHUP before SIGKILL: nobody is watching what it would do next (#13).
HANGUP_GRACE_SECONDS = 2.0
MIN_REMOTE_SECONDS = 1.0
# Opening a session: how often the wait looks for Ctrl-C, and when it says it is waiting.
OPEN_POLL_SECONDS = 0.1
OPEN_NOTICE_SECONDS = 3.0


def fd_sink(fd: int) -> Sink:
    """Write every byte to `fd` unbuffered, so output shows as soon as it arrives."""

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except BrokenPipeError:
                return  # the reader went away (`| head`): drop the rest, like a local run
            view = view[written:]

    write.fd = fd  # type: ignore[attr-defined]  # a progress bar sizes itself to this terminal
    return write


@dataclass
class Streams:
    stdin: int | bytes | None  # a readable fd, whole input, or None for immediate EOF
    stdout: Sink
    stderr: Sink


@dataclass
class RunReport:
    exit_code: int
    session_name: str
    session_id: str
    charged_min: float
    sync_up: SyncUpReport | None = None
    sync_back: SyncBackReport | None = None
    timed_out: bool = False
    limited_by: str = ""  # "budget" or "timeout": which cap stopped a timed-out run
    client_signal: int | None = None
    notices: list[str] = field(default_factory=list)


class RemoteRun:
    """One command in flight; `forward_signal` may be called from a signal handler.

    SIGHUP means the client is gone (its connection dropped or its terminal closed): the
    remote group gets SIGHUP, then SIGKILL after HANGUP_GRACE_SECONDS whether or not it
    trapped the HUP (a `nohup` child included), and the run syncs nothing back.
    """

    def __init__(self, hangup_grace: float = HANGUP_GRACE_SECONDS) -> None:
        self._process: Process | None = None
        # Reentrant: a signal handler (in-process exec) may interrupt the main thread while
        # it holds this lock in `_attach`, and then takes it again.
        self._lock = threading.RLock()
        self.client_signal: int | None = None
        self.client_gone = False
        self._signals_seen = 0
        self._hangup_grace = hangup_grace
        self._killer: threading.Timer | None = None
        self._size: tuple[int, int] | None = None  # the client's window, when it changed

    def resize(self, rows: int, cols: int) -> None:
        """The client's terminal got a new window size: the remote terminal follows (where
        the backend can resize one: Process.resize), also when it changed before the start."""
        with self._lock:
            self._size = (rows, cols)
            process = self._process
        if process is not None:
            process.resize(rows, cols)

    def forward_signal(self, sig: int) -> None:
        with self._lock:
            self.client_signal = sig
            self._signals_seen += 1
            process = self._process
            if sig == _signal.SIGHUP and not self.client_gone:
                self.client_gone = True
                self._killer = threading.Timer(self._hangup_grace, self.kill)
                self._killer.daemon = True
                self._killer.start()
        if process is not None:
            # A second interrupt means "stop now", as in a local terminal.
            process.signal(_signal.SIGKILL if self._signals_seen > 1 else sig)

    def kill(self) -> None:
        """SIGKILL the whole remote process group, if it was started."""
        with self._lock:
            process = self._process
            if self._killer is not None:
                self._killer.cancel()
        if process is not None:
            process.signal(_signal.SIGKILL)

    @property
    def started(self) -> bool:
        """The remote command was started (a failure after this never re-runs it here)."""
        with self._lock:
            return self._process is not None

    def _attach(self, process: Process) -> bool:
        with self._lock:
            self._process = process
            size, wanted = self._size, self.client_signal is None
        if size is not None:  # resized while the session opened: the start's size is old
            process.resize(*size)
        return wanted


def resources(settings: Settings, purpose: str) -> tuple[float, int, str | None]:
    """(cpu, memory MiB, gpu) of the sandbox a `purpose` ("exec" or "heavy") runs in."""
    if purpose == "heavy":
        return settings.heavy_cpu, settings.heavy_memory_mb, settings.gpu
    return settings.exec_cpu, settings.exec_memory_mb, settings.gpu


def session_spec(settings: Settings, workspace: Workspace, purpose: str,
                 image: ImageSpec | None = None, build_output: bool = False,
                 grant: Grant | None = None, task: str = "", seed: str = "") -> SessionSpec:
    """The session for `purpose`, keyed by its resources (a GPU one is another) and its
    image hash (issue 12), derived from the workspace now unless `image` is given. Its
    timeout is what is wanted; `grant` (the meter's lease) may lower it at creation.
    `task`/`seed`: a batch task's own sandbox, started from a snapshot (issue 18)."""
    if image is None:
        image = image_cache.current(workspace.root, settings)
    cpu, memory, gpu = resources(settings, purpose)
    return SessionSpec(
        name=workspace.session_name(cpu, memory, image.hash, gpu, task),
        workspace=workspace.root,
        app_name=settings.app_name, cpu=cpu, memory_mb=memory, gpu=gpu,
        timeout_seconds=settings.timeout_seconds,
        idle_timeout_seconds=settings.idle_timeout_seconds,
        apt_packages=settings.apt_packages, pip_packages=settings.pip_packages,
        tags={"modal-offload": "1", "workspace": workspace.id, "mo-image": image.hash},
        image=image, build_output=build_output, grant=grant, seed=seed,
        resume_grace_seconds=settings.resume_grace_seconds,
    )


def sandbox_meter(settings: Settings, ledger: Ledger, workspace_id: str,
                  purpose: str) -> SandboxMeter:
    cpu, memory, gpu = resources(settings, purpose)
    return SandboxMeter(ledger, Budget(settings.max_min_per_day, settings.max_usd_per_day),
                        source=purpose, workspace=workspace_id,
                        usd_per_s=config.prices(settings).per_second(cpu, memory, gpu),
                        interval=settings.heartbeat_seconds)


def with_pythonpath(env: Mapping[str, str], session: Session,
                    image: ImageSpec) -> Mapping[str, str]:
    """The workspace's own package importable remotely as it is locally (issue 12): its
    folders (e.g. `src`) on PYTHONPATH, the session's copy being always current, which an
    editable install would give too. A forwarded local PYTHONPATH means nothing remotely."""
    if not image.pythonpath:
        return env
    folders = [session.root if rel in ("", ".") else f"{session.root}/{rel}"
               for rel in image.pythonpath]
    return {**env, "PYTHONPATH": ":".join(folders)}


class _Told:
    """A stderr sink that remembers whether anything went through it."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.any = False

    def __call__(self, data: bytes) -> None:
        self.any = self.any or bool(data)
        self.sink(data)


def _say(streams: Streams, text: str) -> None:
    if text:
        streams.stderr(f"modal-offload: {text}\n".encode())


def _pump(chunks: Any, sink: Sink) -> None:
    for chunk in chunks:
        sink(chunk)


def _feed_stdin(process: Process, source: int | bytes | None) -> None:
    try:
        if isinstance(source, bytes):
            process.write_stdin(source)
        elif isinstance(source, int):
            while True:
                try:
                    data = os.read(source, _CHUNK)
                except OSError:
                    break
                if not data:
                    break
                process.write_stdin(data)
    finally:
        process.close_stdin()


def _abandoned() -> None:
    """An open left running in its thread is cancelled when the process exits; the client's
    event loop then logs each cancelled call as "unhandled exception during asyncio.run()
    shutdown" with a traceback on stderr. That is expected here, so asyncio's logger is
    quietened: the user already got one line saying what happened. A build in that thread
    may also hold sys.stdout/sys.stderr redirected into its log buffer
    (backends/_modal_build.py: contextlib.redirect_*, process-wide), which would swallow
    that line: the real streams are put back."""
    import logging  # here only: ~2 ms on every in-process command otherwise (issue 17)

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    # Calls abandoned mid-retry may also leave coroutines that the interpreter's exit reports
    # as "never awaited" (a RuntimeWarning on stderr): the same expected noise.
    warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited",
                            category=RuntimeWarning)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


class Gateway:
    # A batch task's gateway (batch/runner.py) names its own sandbox; "" is the shared one.
    task = ""
    seed = ""  # ... and may start it from a snapshot (SessionSpec.seed)

    def __init__(self, settings: Settings, backend: Backend, workspace: Workspace,
                 ledger: Ledger | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.workspace = workspace
        self.ledger = ledger or Ledger()

    def remaining_min(self) -> float:
        """Minutes a new sandbox could still be granted (live sandboxes' leases counted)."""
        return self.ledger.snapshot().remaining(self.settings.max_min_per_day)

    @staticmethod
    def _sync_guard(session: Session, timeout: float = 600) -> AbstractContextManager[None]:
        """Syncs into one session are serialized (across threads and processes); the
        commands themselves run concurrently."""
        return exclusive(paths.sessions_state_dir() / f"{session.name}.sync", timeout=timeout)

    def _sync(self, session: Session, progress: bool | Sink) -> Any:
        from .sync.client import SyncPolicy, WorkspaceSync

        cache = paths.sessions_state_dir() / session.name
        policy = SyncPolicy(protected=self.settings.protected,
                            upload_secrets=self.settings.upload_secrets)
        return WorkspaceSync(self.workspace.root, session, cache,
                             max_bytes=self.settings.sync_max_bytes, progress=progress,
                             policy=policy, max_files=self.settings.sync_max_files)

    def run(self, argv: Sequence[str] | Callable[[Session], Sequence[str]], *, cwd_rel: str,
            env: Mapping[str, str], streams: Streams, sync_back: bool, purpose: str = "exec",
            handle: RemoteRun | None = None, progress: bool = False,
            pty: PtySpec | None = None) -> RunReport:
        """`pty`: run under a remote pseudo-terminal (stdout then carries stdout and stderr
        merged, as on the terminal; `streams.stdin` is the raw keystrokes)."""
        handle = handle or RemoteRun()
        refuse_unsafe_root(self.workspace, self.settings.allow_home_workspace)
        self.ledger.settle_pending()  # ChargePending: the cap cannot be checked until then
        snap = self.ledger.snapshot()
        budget = self.settings.max_min_per_day
        if (budget - snap.used_min) * 60 < MIN_REMOTE_SECONDS:
            raise BudgetExhausted(
                f"daily remote budget used up ({budget:g} min)",
                "wait for tomorrow, raise PRIMARY_MODAL_MAX_MIN_PER_DAY, "
                "or `modal-offload usage reset`")
        usd_cap = self.settings.max_usd_per_day
        if usd_cap is not None and snap.used_usd >= usd_cap:
            raise BudgetExhausted(f"daily remote budget used up (${usd_cap:g})",
                                  "wait for tomorrow or raise PRIMARY_MODAL_MAX_USD_PER_DAY")
        meter = sandbox_meter(self.settings, self.ledger, self.workspace.id, purpose)
        image = image_cache.current(self.workspace.root, self.settings)
        spec = session_spec(self.settings, self.workspace, purpose, image,
                            build_output=progress, grant=meter.grant, task=self.task,
                            seed=self.seed)
        program = None if callable(argv) else programs.program_of(list(argv))
        self._check_program(program, image)
        family = self.workspace.session_family(spec.cpu, spec.memory_mb, spec.gpu, self.task)
        told = _Told(streams.stderr)
        streams = Streams(streams.stdin, streams.stdout, told)
        self._before_open(spec, family, streams, progress, meter)
        report = RunReport(exit_code=0, session_name=spec.name, session_id="", charged_min=0.0)
        try:
            # Quiet when the image's notes or Modal's own build log (on a terminal) already
            # say what is coming: one line about the wait, not two.
            session = self._open(spec, handle, streams.stderr,  # BudgetExhausted: no lease
                                 quiet=progress or told.any)
        except OSError as exc:
            raise BackendError(f"{self.backend.name} backend failed: {exc}",
                               "retry; `modal-offload session stop` resets the session") from exc
        try:
            lease = meter.attach(session)
            if meter.over_cap():
                # Minutes spent elsewhere (`usage add`, another machine) since this sandbox
                # got its lease: its deadline would overrun the cap, so it makes way for a
                # sandbox whose lease fits what is left.
                self.backend.end_session(session)
                meter.end(lease)
                session = self._open(spec, handle, streams.stderr, quiet=True)
                lease = meter.attach(session)
        except OSError as exc:
            # Whatever was reserved stays in the ledger (the cap holds) and the next
            # command binds it; without a lease this one must not run.
            raise BudgetExhausted(
                f"the usage ledger {self.ledger.path} cannot be written ({why(exc)}): no "
                "lease for the sandbox", "free disk space or fix the file, then run again"
            ) from None
        charged_before = self._charged_s(lease)
        try:
            with meter.running(lease):  # settled at each heartbeat and at the end
                report.session_id = session.id
                self._after_open(session, family, image)
                self._check_program(program, image)
                # A bar is drawn where the user's stderr is (the client's, from the host).
                sync = self._sync(session, told.sink if progress else False)
                if callable(argv):
                    argv = argv(session)
                cwd = session.root if cwd_rel in ("", ".") else f"{session.root}/{cwd_rel}"
                run_env = with_pythonpath(env, session, image)
                starts: list[Callable[[], Process]] = []

                def then(apply: Process | None, collect: list[str]) -> None:
                    # Sent before the sync up's answer is read: the session orders the
                    # command after it (in one write over the channel, issue 17), and the
                    # command starts only once that answer is good (start() below).
                    if handle.client_signal is None:
                        starts.append(session.exec_after(
                            apply, argv, cwd=cwd, env=run_env, pty=pty,
                            collect=collect if sync_back else None))

                with self._sync_guard(session):
                    try:
                        report.sync_up = sync.up(then=then)
                    except TooManyFiles:
                        if session.fresh:
                            # Opened for this command and nothing of the tree is there:
                            # left warm it would bill idle until the tree is trimmed.
                            self.backend.end_session(session)
                        raise
                remote_changed: bool | None = None
                prepared: Process | None = None
                try:
                    if not starts and handle.client_signal is not None:
                        report.exit_code = 128 + handle.client_signal
                    else:
                        # Once sent, it is started even if a signal came since: _attach
                        # then delivers the signal, as for one right after an exec.
                        process = (starts[0] if starts else session.exec_after(
                            None, argv, cwd=cwd, env=run_env, pty=pty))()
                        report.exit_code, report.timed_out, remote_changed = \
                            self._run_process(
                                process, streams, handle,
                                limit=max(MIN_REMOTE_SECONDS, session.deadline - time.time()),
                                notices=report.notices)
                        prepared = getattr(process, "prepared_collect", None)
                    if sync_back and handle.client_gone:
                        report.notices.append("the client went away: nothing was synced back")
                    elif sync_back:
                        self._sync_back(session, sync, report, remote_changed, prepared)
                        prepared = None
                finally:
                    if prepared is not None:  # asked for and not taken: it commits nothing
                        with contextlib.suppress(Exception):
                            prepared.close_stdin()
        except BackendUnavailable as exc:
            if handle.started:  # the command may have had effects: never re-run it locally
                raise BackendError(exc.message, exc.hint) from exc
            raise
        except OSError as exc:
            raise BackendError(f"{self.backend.name} backend failed: {exc}",
                               "retry; `modal-offload session stop` resets the session") from exc
        finally:
            # Charged whether the run succeeded or failed: the provider bills either way.
            # A charge that cannot be written stays in the sandbox's lease (which keeps the
            # cap) and is written by the next settle: never raised here, where it would
            # replace the command's exit code, or the error being raised.
            report.charged_min = max(0.0, self._charged_s(lease) - charged_before) / 60
            if (text := meter.notice()) is not None:
                report.notices.append(text)
        report.client_signal = handle.client_signal
        if report.client_signal is not None:
            report.exit_code = 128 + report.client_signal
        if report.timed_out:
            life = int(session.deadline - session.created_at)
            by_budget = life < self.settings.timeout_seconds
            report.limited_by = "budget" if by_budget else "timeout"
            report.notices.append(
                f"stopped at the sandbox's {life}s limit: " + (
                    "the daily remote budget ran out" if by_budget
                    else "MODAL_TIMEOUT_SECONDS was reached"))
        return report

    def _open(self, spec: SessionSpec, handle: RemoteRun, say: Sink,
              quiet: bool = False) -> Session:
        """`open_session`, bounded by MODAL_OFFLOAD_OPEN_TIMEOUT and interruptible (issue 19):
        a first image build may take minutes, so after OPEN_NOTICE_SECONDS one line says what
        is happening, Ctrl-C stops waiting (StoppedWaiting, exit 130), and past the bound the
        command runs locally in `auto` (BackendTooSlow). What was started goes on remotely
        in an abandoned daemon thread: the build finishes there and the next command uses it."""
        box: list[Session | BaseException] = []
        done = threading.Event()

        def target() -> None:
            try:
                box.append(self.backend.open_session(spec))
            except BaseException as exc:  # handed to the caller below
                box.append(exc)
            finally:
                done.set()

        threading.Thread(target=target, name="open-session", daemon=True).start()
        began = time.monotonic()
        said = False
        limit = self.settings.open_timeout_seconds
        while not done.wait(OPEN_POLL_SECONDS):
            waited = time.monotonic() - began
            if handle.client_signal is not None:
                _abandoned()
                raise StoppedWaiting(
                    f"stopped waiting for the {self.backend.name} session after {waited:.0f}s",
                    "an image build it started goes on there, and the next command uses it")
            if waited >= limit:
                _abandoned()
                raise BackendTooSlow(
                    f"opening the {self.backend.name} session took more than {limit:g}s",
                    "raise MODAL_OFFLOAD_OPEN_TIMEOUT for a long first image build")
            if not said and not quiet and waited >= OPEN_NOTICE_SECONDS:
                said = True
                say(b"modal-offload: still opening the remote session; Ctrl-C stops waiting\n")
        result = box[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _charged_s(self, lease_id: str) -> float:
        try:
            leases = self.ledger.snapshot().leases
        except OffloadError:
            return 0.0
        return next((lease.charged_s for lease in leases if lease.lease_id == lease_id), 0.0)

    def _before_open(self, spec: SessionSpec, family: str, streams: Streams,
                     progress: bool, meter: SandboxMeter) -> None:
        """Say what the image means for this command (issue 12): its notes, a move to a new
        session when it changed (ending the old one), or that a first build is coming."""
        image = spec.image
        assert image is not None
        remote = self.backend.name != "local"  # the local backend runs this machine's tools
        if remote:
            for note in image.notes:
                _say(streams, once(note))
        last = identity.previous(family)
        moved = identity.move(self.backend, family, spec, image)
        if moved and last is not None:
            meter.end_session(str(last["session"]))  # ended: release what it did not use
        _say(streams, moved)  # one line, which also says a new image is coming
        if (remote and image.steps and not progress and not moved
                and not identity.known_built(self.backend.name, image.hash)):
            # On a terminal Modal's own build log shows instead (backends/_modal_build.py).
            _say(streams, once(f"preparing the remote image {image.hash} for this workspace "
                               "(the first build of new dependencies can take minutes)", 60))

    def _check_program(self, program: str | None, image: ImageSpec) -> None:
        """Refuse a command whose program the image lacks before it costs a remote run."""
        if program is None or self.settings.when_missing_program == "remote":
            return
        names = programs.known(self.backend.name, image.hash)
        if names is not None and program not in names:
            raise programs.MissingProgram(program)

    def _after_open(self, session: Session, family: str, image: ImageSpec) -> None:
        identity.mark_built(self.backend.name, image.hash)
        last = identity.previous(family)
        if last is None or last.get("session") != session.name:
            identity.remember(family, session.name, image)
        if session.fresh or programs.known(self.backend.name, image.hash) is None:
            programs.store(self.backend.name, image.hash, programs.list_remote(session))

    def _sync_back(self, session: Session, sync: Any, report: RunReport,
                   remote_changed: bool | None = None, prepared: Process | None = None
                   ) -> None:
        """Once the command has run, its exit code is what the caller must get: a sync
        back that fails (a full disk, a dropped connection) becomes a notice, and the
        changes stay in the remote session (#13).

        `prepared`: the collect the session started right after the command; it holds
        the remote sync lock until acknowledged, so when another sync holds ours (its
        apply then waits for that lock) it is dropped and a new one waits its turn."""
        try:
            with contextlib.ExitStack() as stack:
                if prepared is not None:
                    try:
                        stack.enter_context(self._sync_guard(session, timeout=0))
                    except OffloadError:
                        prepared.close_stdin()  # not acknowledged: it commits nothing
                        prepared = None
                if prepared is None:
                    stack.enter_context(self._sync_guard(session))
                report.sync_back = sync.back(remote_changed, prepared)
        except (OSError, OffloadError) as exc:
            text = exc.one_line() if isinstance(exc, OffloadError) else (
                f"{exc.__class__.__name__}: {exc}")
            report.notices.append(f"sync back failed ({text}); the changes stay in the "
                                  "remote session")
        finally:
            if prepared is not None:  # a no-op once acknowledged; else it commits nothing
                with contextlib.suppress(Exception):
                    prepared.close_stdin()

    def _run_process(self, process: Process, streams: Streams, handle: RemoteRun,
                     limit: float, notices: list[str]) -> tuple[int, bool, bool | None]:
        """(exit status, timed out, whether the remote tree changed: None = unknown)."""
        if not handle._attach(process):
            process.signal(handle.client_signal or _signal.SIGTERM)
        pumps = [threading.Thread(target=_pump, args=(process.stdout_chunks(), streams.stdout),
                                  daemon=True),
                 threading.Thread(target=_pump, args=(process.stderr_chunks(), streams.stderr),
                                  daemon=True)]
        for t in pumps:
            t.start()
        # stdin may block forever on a terminal nobody types into: never join this thread.
        threading.Thread(target=_feed_stdin, args=(process, streams.stdin), daemon=True).start()
        timed_out = threading.Event()

        def stop_at_limit() -> None:
            timed_out.set()
            process.signal(_signal.SIGTERM)
            killer = threading.Timer(KILL_GRACE_SECONDS, process.signal, (_signal.SIGKILL,))
            killer.daemon = True
            killer.start()

        timer = threading.Timer(limit, stop_at_limit)
        timer.daemon = True
        timer.start()
        try:
            code = process.wait()
        except OffloadError:
            # A wait that gave up (a lost connection, issue 19) leaves the client's calls
            # abandoned just as a failed stream does: one line, not their exit noise.
            _abandoned()
            raise
        finally:
            timer.cancel()
        if handle.client_signal is not None or timed_out.is_set():
            # The user asked the command to stop: leave nothing of it running remotely,
            # including background jobs that ignored the signal and still hold our pipes.
            handle.kill()
        for t in pumps:
            t.join()
        failure = process.stream_failure()
        if failure is not None:  # output was lost: the exit code alone would mislead
            _abandoned()  # the client's given-up calls must not add lines to our one
            raise failure
        dropped = process.stdin_dropped
        if dropped:  # lost with the connection (issue 19): said, never silently dropped
            notices.append(f"{dropped} byte(s) of input could not be delivered to the remote "
                           "command; it saw end of input there")
        changed = getattr(process, "tree_changed", None)  # the session channel's answer
        return code, timed_out.is_set(), changed if isinstance(changed, bool) else None
