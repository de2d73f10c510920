"""The host process: a Unix socket in the runtime folder, one thread per connection.

Only this user may connect: the folder is 0700, the socket 0600, and each peer's uid is
checked with SO_PEERCRED. The host exits after `host_idle_seconds` without connections,
on `host stop`, on SIGTERM, or when a client with other code asks (`mismatch`): it then
unlinks its socket at once, so the next client starts a fresh host, and finishes the
commands it is running before exiting.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__, config
from ..errors import EXEC_FAILURE_EXIT, OffloadError
from ..fileio import atomic_write_text
from ..private import peer_allowed, peer_credentials, peer_uid
from . import lifecycle, protocol
from .log import log, log_path, setup, teardown
from .warm import Warm

__all__ = ["Host", "peer_allowed", "peer_uid", "serve"]

_ACCEPT_POLL_SECONDS = 0.2


class Host:
    def __init__(self, location: lifecycle.Location, idle_seconds: float,
                 fingerprint: str) -> None:
        self.location = location
        self.idle_seconds = idle_seconds
        self.fingerprint = fingerprint
        self.warm = Warm()
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._connections = 0
        self._last_activity = time.monotonic()
        self._commands: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self._retiring = threading.Event()
        self._socket_ino: int | None = None
        self._listener: socket.socket | None = None

    # ------------------------------------------------------------- lifecycle
    def _listen(self) -> socket.socket:
        self.location.ensure_private_dir()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.location.socket)  # the caller holds the start lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # born 0600: no window in which others could connect
        try:
            lifecycle.bind(listener, self.location.socket)
        finally:
            os.umask(old)
        os.chmod(self.location.socket, 0o600)
        self._socket_ino = os.stat(self.location.socket).st_ino
        listener.listen(128)
        listener.settimeout(_ACCEPT_POLL_SECONDS)
        previous = self.location.read_pidfile()
        if previous is not None and previous.get("pid") != os.getpid():
            log.info("restart: replacing host pid %s (version %s)", previous.get("pid"),
                     previous.get("version"))
        atomic_write_text(Path(self.location.pidfile), json.dumps(
            {"pid": os.getpid(), "version": __version__, "fingerprint": self.fingerprint,
             "started_at": self.started_at, "socket": self.location.socket}), mode=0o600)
        return listener

    def retire(self, why: str = "asked to stop") -> None:
        """Stop taking connections now; exit once running commands are done."""
        if not self._retiring.is_set():
            log.info("retiring: %s", why)
        self._retiring.set()
        self._unlink_own(self.location.socket)

    def _unlink_own(self, path: str) -> None:
        try:
            if os.stat(path).st_ino == self._socket_ino:
                os.unlink(path)
        except OSError:
            pass

    def serve(self, install_signals: bool = True) -> int:
        listener = self._listen()
        log.info("started: version %s, code %s, socket %s", __version__, self.fingerprint,
                 self.location.socket)
        threading.Thread(target=self._settle_loop, name="settle", daemon=True).start()
        if install_signals:  # only possible in the main thread; tests run hosts in threads
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, lambda s, _f: self.retire(f"signal {s}"))
        try:
            while True:
                if self._retiring.is_set():
                    with self._lock:
                        if self._connections == 0:
                            break
                    time.sleep(_ACCEPT_POLL_SECONDS)
                    continue
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    self._check_idle()
                    continue
                except OSError:
                    continue
                conn.settimeout(None)
                with self._lock:
                    self._connections += 1
                    self._last_activity = time.monotonic()
                threading.Thread(target=self._serve_connection, args=(conn,),
                                 name="client", daemon=True).start()
        finally:
            listener.close()
            self._unlink_own(self.location.socket)
            data = self.location.read_pidfile()
            if data is not None and data.get("pid") == os.getpid():
                with contextlib.suppress(OSError):
                    os.unlink(self.location.pidfile)
            self.warm.close()
            log.info("exited")
        return 0

    def _settle_loop(self) -> None:
        """Each heartbeat, charge the sandboxes this host knows up to now, and end the
        leases of those that have ended, so idle time is charged promptly (issue 15)."""
        from ..budget import Ledger
        from ..config import MAX_HEARTBEAT_SECONDS
        from ..meter import settle_all

        try:
            interval = config.load(None).heartbeat_seconds
        except OffloadError:
            interval = MAX_HEARTBEAT_SECONDS
        while not self._retiring.wait(interval):
            alive: dict[str, bool] = {}
            for session in self.warm.known_sessions():
                try:
                    alive[session.id] = bool(session.info().alive)
                except Exception as exc:  # unreachable now: settle it next time
                    log.debug("cannot check session %s: %s", session.name, exc)
            if not alive:
                continue
            try:
                settle_all(Ledger(), alive, only_known=True)
            except (OSError, OffloadError) as exc:  # the lease keeps the cap; retried
                log.info("settling sandboxes failed: %s", exc)

    def _check_idle(self) -> None:
        with self._lock:
            idle = (self._connections == 0
                    and time.monotonic() - self._last_activity >= self.idle_seconds)
        if idle:
            self.retire(f"idle for {self.idle_seconds:g}s")

    # ----------------------------------------------------------- connections
    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            pid, uid = peer_credentials(conn)
            if not peer_allowed(uid):
                log.warning("rejected peer: uid %d (pid %d) is not this user", uid, pid)
                return
            got = protocol.recv(conn, with_fds=True)
            if got is None:
                return
            message, fds = got
            self._dispatch(conn, message, fds)
        except (OSError, protocol.ProtocolError) as exc:
            # The client went away or sent garbage; it reports its own error.
            log.warning("dropped connection: %s", exc.__class__.__name__)
        finally:
            # shutdown, not just close: a thread still blocked in recv on this socket
            # would otherwise keep it open and the client would wait forever.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._connections -= 1
                self._last_activity = time.monotonic()

    def _dispatch(self, conn: socket.socket, message: dict[str, Any], fds: list[int]) -> None:
        op = message.get("op")
        if op == "exec":
            if message.get("fingerprint") != self.fingerprint or self._retiring.is_set():
                for fd in fds:
                    os.close(fd)
                self.retire("a client runs other code (upgrade or edit): a new host starts")
                protocol.send(conn, {"op": "mismatch", "fingerprint": self.fingerprint})
                return
            from .runner import serve_exec

            with self._lock:
                self._next_id += 1
                command_id = self._next_id
            try:
                serve_exec(conn, message, fds, self.warm,
                           lambda info: self._started(command_id, info))
            finally:
                with self._lock:
                    self._commands.pop(command_id, None)
                    idle = not self._commands
                if idle:
                    release_heap()
            return
        for fd in fds:
            os.close(fd)
        if op == "status":
            protocol.send(conn, self.status())
        elif op == "forget":
            # `session stop` ended this user's sessions: never hand a cached one out again.
            self.warm.forget_sessions()
            log.info("forgot cached sessions (`modal-offload session stop`)")
            protocol.send(conn, {"op": "forgotten"})
        elif op == "stop":
            self.retire("`modal-offload host stop`")
            protocol.send(conn, {"op": "stopping", "pid": os.getpid()})
        else:
            protocol.send(conn, {"op": "error", "message": f"unknown request {op!r}",
                                 "exit": EXEC_FAILURE_EXIT})

    def _started(self, command_id: int, info: dict[str, Any]) -> None:
        with self._lock:
            self._commands[command_id] = {**info, "started_at": time.time()}

    def status(self) -> dict[str, Any]:
        with self._lock:
            commands = list(self._commands.values())
        return {"op": "status", "pid": os.getpid(), "version": __version__,
                "fingerprint": self.fingerprint, "uptime": time.time() - self.started_at,
                "idle_seconds": self.idle_seconds, "sessions": self.warm.sessions(),
                "workspaces": list(self.warm.workspaces()), "commands": commands,
                "reach": self.warm.breakers(),
                "log": str(log_path(lifecycle.config_key()))}


_TRIM: Callable[[int], int] | None = None


def release_heap() -> None:
    """Give the C heap's free pages back to the system after a command (glibc's
    malloc_trim; elsewhere nothing). A first sync of 100k files frees tens of MB of
    buffers that glibc would otherwise keep as RSS for the host's life (issue 21): ~5 MB
    at 100k files, measured. Runs after the client has its answer."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _TRIM = lambda pad: 0  # noqa: E731 - not glibc: nothing to give back
    _TRIM(0)


def serve(idle_seconds: float) -> int:
    """Run a host for this environment until it is idle or told to stop."""
    for name in os.environ.pop(lifecycle.HOST_MALLOC_MARK, "").split(","):
        if name in lifecycle.HOST_MALLOC:  # ours (lifecycle.host_environment), not theirs
            os.environ.pop(name, None)
    fingerprint = protocol.fingerprint()  # first: the code on disk we are about to load
    location = lifecycle.Location()
    handler = setup(log_path(lifecycle.config_key()))
    try:
        return Host(location, idle_seconds, fingerprint).serve()
    except Exception:
        log.exception("crashed")
        raise
    finally:
        teardown(handler)
