"""One `exec` for a thin client, inside the host: the same decisions as commands/exec.py,
with the client's own stdin/stdout/stderr (passed as fds) and its environment.

Conversation (host side), after the client's `exec` message:
  -> accepted                      (or `mismatch`: the client restarts the host)
  <- signal {sig} ...              (the client forwards SIGINT/SIGTERM/SIGHUP)
  -> done {exit, notices} | local {notice} | error {message, exit} | inprocess
"""

from __future__ import annotations

import contextlib
import os
import select
import signal as _signal
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import workspace as _workspace
from ..backends._base import PtySpec, Session
from ..commands import exec as exec_cmd
from ..errors import (
    EXEC_FAILURE_EXIT,
    BackendError,
    BackendTooSlow,
    BackendUnreachable,
    BudgetExhausted,
    OffloadError,
)
from ..gateway import Gateway, RemoteRun, Sink, Streams, fd_sink
from ..image import cache as image_cache
from ..image import identity
from ..image.programs import MissingProgram
from ..remote_env import remote_environment
from . import protocol
from .breaker import Breaker
from .log import log
from .warm import Warm, WarmBackend
from .watcher import Watcher

_CHUNK = 64 * 1024


class HintedSync:
    """A WorkspaceSync whose `up()` asks the watcher what changed instead of walking."""

    def __init__(self, inner: Any, watcher: Watcher, consumer: str) -> None:
        self.inner = inner
        self.watcher = watcher
        self.consumer = consumer

    def up(self, then: Any = None) -> Any:
        changed = self.watcher.take(self.consumer)
        try:
            return self.inner.up(changed=changed, then=then)
        except BaseException:
            self.watcher.invalidate(self.consumer)  # what we took was not synced
            raise

    def back(self, remote_changed: bool | None = None, prepared: Any = None) -> Any:
        return self.inner.back(remote_changed, prepared)


class HostGateway(Gateway):
    """The gateway with the host's in-memory baselines and watcher hints."""

    def __init__(self, *args: Any, warm: Warm, watcher: Watcher | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warm = warm
        self.watcher = watcher

    def _sync(self, session: Session, progress: bool | Sink) -> Any:
        sync = super()._sync(session, progress)
        sync.memo = self.warm.baselines
        if self.watcher is None:
            return sync
        return HintedSync(sync, self.watcher, session.name)


class StdinRelay:
    """Copies the client's stdin into a pipe the gateway reads, and can be stopped.

    Without it a command that ends while the client's terminal is idle would leave a
    host thread blocked reading that terminal forever, eating the user's next keystrokes.
    """

    def __init__(self, source: int) -> None:
        self.source = source
        self.read_fd, self._write_fd = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._copy, name="stdin-relay", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.source, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                try:
                    data = os.read(self.source, _CHUNK)
                except OSError:
                    return
                if not data:
                    return
                view = memoryview(data)
                while view:
                    view = view[os.write(self._write_fd, view):]
        except OSError:
            return  # the command closed its stdin (EPIPE): the rest is not wanted
        finally:
            os.close(self._write_fd)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w, self.read_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _stream_fds(message: dict[str, Any], fds: list[int]) -> dict[int, int]:
    """Map the client's std fd numbers (0, 1, 2) to the fds we received."""
    which = [int(n) for n in message.get("std", [])]
    return dict(zip(which, fds, strict=False))


def _listen_for_signals(conn: socket.socket, handle: RemoteRun,
                        finished: threading.Event, argv0: str) -> None:
    while True:
        try:
            got = protocol.recv(conn)
        except (OSError, protocol.ProtocolError):
            got = None
        if got is None:
            if not finished.is_set():
                # The client vanished (killed, terminal closed): a hang-up, which stops the
                # whole remote process group and applies no sync back (gateway.RemoteRun).
                log.warning("dropped connection: the client of `%s` vanished mid-command; "
                            "hanging up the remote command, no sync back", argv0)
                handle.forward_signal(_signal.SIGHUP)
            return
        message, _ = got
        if message.get("op") == "signal":
            handle.forward_signal(int(message.get("sig", _signal.SIGTERM)))
        elif message.get("op") == "resize":
            try:
                rows, cols = int(message["rows"]), int(message["cols"])
            except (KeyError, TypeError, ValueError):
                continue  # not a size: the terminal keeps the one it has
            handle.resize(rows, cols)  # clamped to what a winsize holds (_pty.set_size)


def serve_exec(conn: socket.socket, message: dict[str, Any], fds: list[int], warm: Warm,
               on_started: Callable[[dict[str, Any]], None]) -> None:
    """Run one exec request to completion, answering on `conn`. Closes `fds`."""
    std = _stream_fds(message, fds)
    try:
        protocol.send(conn, {"op": "accepted", "pid": os.getpid()})
        env: Mapping[str, str] = {str(k): str(v) for k, v in message.get("env", {}).items()}
        try:
            outcome = _decide_and_run(conn, message, env, std, warm, on_started)
        except Exception as exc:  # our bug: the client must still get one line and 125
            log.exception("internal error in an exec")
            outcome = {"op": "error", "exit": EXEC_FAILURE_EXIT,
                       "message": f"internal error in the session host: "
                                  f"{exc.__class__.__name__}: {exc}"}
        protocol.send(conn, outcome)
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _decide_and_run(conn: socket.socket, message: dict[str, Any], env: Mapping[str, str],
                    std: dict[int, int], warm: Warm,
                    on_started: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    try:
        command = exec_cmd.command_argv(message.get("argv", []), message.get("shell"))
        ws = _workspace.require(Path(str(message.get("cwd", "/"))))
        cwd_rel = ws.relative(Path(str(message.get("cwd", "/"))))
    except OffloadError as exc:  # as the top-level handler would: its own exit code
        return {"op": "error", "message": exc.one_line(), "exit": exc.exit_code}
    settings = None
    backend: WarmBackend | None = None
    breaker: Breaker | None = None
    forced = message.get("backend") is not None
    try:
        gpu = message.get("gpu")
        chosen = exec_cmd.plan(ws, message.get("backend"), env,
                               gpu=gpu if isinstance(gpu, str) else None,
                               breaker_for=warm.breaker)
        settings = chosen.settings
        if not settings.use_host:
            return {"op": "inprocess"}  # turned off in a config file, which only we read
        if chosen.backend is None:
            return {"op": "local", "notice": chosen.local_notice}
        if _first_build_on_terminal(ws, settings, chosen.backend.name, std):
            # Modal's build progress and logs go to a process's own terminal
            # (modal.enable_output), not to a client's fd: that command runs in the client.
            return {"op": "inprocess"}
        breaker = warm.breaker(chosen.backend, settings)
        recovered = breaker.take_recovered()
        backend = warm.backend(chosen.backend)
        backend.on_unreachable = breaker.trip  # a broken session channel opens it too
        gateway = HostGateway(settings, backend, ws, warm=warm, watcher=warm.watcher(ws.root))
        sync_back = message.get("sync_back")
        pty = message.get("pty")
        report = _run(conn, gateway, command, cwd_rel, env, std, on_started,
                      settings.sync_back if sync_back is None else bool(sync_back),
                      exec_cmd.pty_spec(pty if isinstance(pty, dict) else None))
    except (BudgetExhausted, BackendUnreachable, BackendTooSlow) as exc:
        # Met before the command started (gateway.py); rejected credentials still fail.
        if isinstance(exc, BackendUnreachable):
            _lost(backend, breaker, exc)
        unreachable = not isinstance(exc, BudgetExhausted)
        local = (exec_cmd.budget_fallback(settings, exc, forced and unreachable)
                 if settings is not None else None)
        if local is None:
            return {"op": "error", "message": exc.one_line(), "exit": exec_cmd.failure_exit(exc)}
        return {"op": "local", "notice": local}
    except MissingProgram as exc:
        local = exec_cmd.missing_fallback(settings, exc) if settings is not None else None
        if local is None:
            return {"op": "error", "message": exc.one_line(), "exit": EXEC_FAILURE_EXIT}
        return {"op": "local", "notice": local}
    except OffloadError as exc:
        if isinstance(exc, BackendError):
            _lost(backend, breaker, exc)
        return {"op": "error", "message": exc.one_line(), "exit": exec_cmd.failure_exit(exc)}
    breaker.answered()  # a remote command came back: Modal is there
    notices = ([recovered] if recovered else []) + exec_cmd.sync_notices(report)
    return {"op": "done", "exit": report.exit_code, "notices": notices}


def _lost(backend: WarmBackend | None, breaker: Breaker | None, exc: OffloadError) -> None:
    """After a backend failure: cached sessions may be gone; and when the service could not
    be reached (before or during the command), the breaker opens."""
    if backend is not None:
        backend.forget()
    if breaker is not None and (isinstance(exc, BackendUnreachable)
                                or isinstance(exc.__cause__, BackendUnreachable)):
        breaker.trip(exc.message)


def _run(conn: socket.socket, gateway: HostGateway, command: list[str], cwd_rel: str,
         env: Mapping[str, str], std: dict[int, int],
         on_started: Callable[[dict[str, Any]], None], sync_back: bool,
         pty: PtySpec | None) -> Any:
    """`pty`: the client's terminal is in raw mode (the client set it, and restores it) and
    asked for a remote terminal; its keystrokes reach it through the same stdin relay."""
    handle = RemoteRun()
    finished = threading.Event()
    listener = threading.Thread(target=_listen_for_signals,
                                args=(conn, handle, finished, os.path.basename(command[0])),
                                name="client-signals", daemon=True)
    listener.start()
    relay = StdinRelay(std[0]) if 0 in std else None
    devnull = os.open(os.devnull, os.O_WRONLY)
    out, err = std.get(1, devnull), std.get(2, devnull)
    on_started({"argv0": command[0], "cwd": str(gateway.workspace.root / cwd_rel)})
    try:
        return gateway.run(
            command, cwd_rel=cwd_rel,
            env=remote_environment(env, gateway.settings.forward_env),
            streams=Streams(relay.read_fd if relay else None, fd_sink(out), fd_sink(err)),
            sync_back=sync_back, handle=handle,
            # The client's stderr, not ours: a progress bar only on the user's terminal.
            progress=_isatty(err), pty=pty)
    finally:
        finished.set()
        if relay is not None:
            relay.stop()
        os.close(devnull)


def _first_build_on_terminal(ws: _workspace.Workspace, settings: Any, backend: str,
                             std: dict[int, int]) -> bool:
    if backend != "modal" or 2 not in std or not _isatty(std[2]):
        return False
    image = image_cache.current(ws.root, settings)
    return not identity.known_built(backend, image.hash)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
