"""Where the host lives on disk, and finding, starting and replacing it.

Light on purpose (cheap stdlib modules only: no pathlib/platformdirs, ~18 ms; no
contextlib, typing, hashlib or json, ~15 ms more, all on every routed command).
Locations come from `paths.runtime_dir_str()`, which imports nothing heavy.

One host serves one *configuration*: the socket name carries a hash of the environment
that decides where the ledger, state and credentials live and which interpreter runs us,
so a client with another HOME or Modal profile never talks to a host that would charge
another ledger.
"""

from __future__ import annotations

import _socket  # see protocol.py
import errno
import fcntl
import os
import sys
import time
import zlib

from .. import paths, private

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

START_TIMEOUT_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 5.0
# Variables that decide which files and credentials the host would use.
# Only the location overrides of paths.py: e.g. MODAL_OFFLOAD_SHIMS_DIR (set by activation)
# must not split one user's host into one per workspace.
_KEY_NAMES = ("HOME", "PRIMARY_MODAL_USAGE_FILE", "MODAL_CONFIG_PATH", "MODAL_PROFILE",
              "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_SERVER_URL", "MODAL_ENVIRONMENT",
              "MODAL_OAUTH_REFRESH_TOKEN", "MODAL_OAUTH_CLIENT_ID", "MODAL_OAUTH_CLIENT_SECRET",
              "MODAL_OAUTH_JWT_KEY", "MODAL_IS_REMOTE",
              "MODAL_OFFLOAD_CACHE_DIR", "MODAL_OFFLOAD_STATE_DIR", "MODAL_OFFLOAD_CONFIG_DIR",
              "MODAL_OFFLOAD_RUNTIME_DIR", "MODAL_OFFLOAD_BIN_DIR")


class HostUnavailable(Exception):
    """The host cannot be reached or started; the caller runs in-process instead."""


def _not_private(exc: private.NotPrivate) -> HostUnavailable:
    return HostUnavailable(f"{exc}; set MODAL_OFFLOAD_RUNTIME_DIR to a private folder of yours")


runtime_dir = paths.runtime_dir_str  # one implementation, also for the thin client


def config_key(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    names = [n for n in env if n in _KEY_NAMES or n.startswith("XDG_")]
    text = "\0".join([sys.executable, __file__, *(f"{n}={env[n]}" for n in sorted(names))])
    data = text.encode(errors="surrogateescape")
    # Two crc32s (64 bits): telling configurations apart needs no cryptographic hash.
    return f"{zlib.crc32(data):08x}{zlib.crc32(data, 0x5bd1e995):08x}"


class Location:
    """The files of one host: socket, start lock, pid/status file, log."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.dir = runtime_dir(environ)
        base = os.path.join(self.dir, f"host-{config_key(environ)}")
        self.socket = base + ".sock"
        self.start_lock = base + ".start.lock"
        self.pidfile = base + ".json"
        self.log = base + ".log"

    def ensure_private_dir(self) -> None:
        """Create the folder 0700, or check an existing one is ours and private: in the /tmp
        fallback another user could have made it first to catch our commands (#13)."""
        try:
            private.make_private_dir(self.dir)
        except private.NotPrivate as exc:
            raise _not_private(exc) from None

    def read_pidfile(self) -> dict[str, Any] | None:
        import json  # not on the exec path

        try:
            with open(self.pidfile, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


class _in_dir_of:
    """A socket address for `path`: AF_UNIX paths are limited to 107 bytes, so long ones go
    through /proc/self/fd/N (Linux) of an open handle on the folder."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> str:
        if len(self.path.encode()) < 100:
            return self.path
        self.fd = os.open(os.path.dirname(self.path), os.O_RDONLY | os.O_DIRECTORY)
        return f"/proc/self/fd/{self.fd}/{os.path.basename(self.path)}"

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def bind(sock: _socket.socket, path: str) -> None:
    with _in_dir_of(path) as address:
        sock.bind(address)


def connect(location: Location) -> _socket.socket | None:
    """A connection to a live host of this user, or None when nobody listens (no or stale
    socket). HostUnavailable when the folder or the listener is not this user's: nothing
    has been sent then, and the caller runs in-process."""
    try:
        if not private.verify_private_dir(location.dir):
            return None
    except private.NotPrivate as exc:
        raise _not_private(exc) from None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_SECONDS)
    try:
        with _in_dir_of(location.socket) as address:
            sock.connect(address)
    except (TimeoutError, FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
            return None
        raise HostUnavailable(f"cannot connect to {location.socket} ({exc.strerror})") from None
    try:
        uid = private.peer_uid(sock)
    except OSError as exc:
        sock.close()
        raise HostUnavailable(f"cannot check who listens on {location.socket} "
                              f"({exc.strerror})") from None
    if not private.peer_allowed(uid):
        sock.close()
        raise HostUnavailable(f"{location.socket} is served by uid {uid}, not this user")
    sock.settimeout(None)
    return sock


def open_private(path: str, flags: int) -> int:
    try:
        return private.open_owned(path, flags | os.O_NOFOLLOW)
    except private.NotPrivate as exc:
        raise HostUnavailable(str(exc)) from None
    except OSError as exc:
        raise HostUnavailable(f"cannot open {path} ({exc.strerror})") from None


def _lock_start(location: Location, timeout: float = START_TIMEOUT_SECONDS) -> int:
    """Take the lock held while checking for and starting a host, so two clients never
    start two; close the returned fd to release it."""
    fd = open_private(location.start_lock, os.O_CREAT | os.O_RDWR)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise HostUnavailable("another client is starting the host and "
                                      "did not finish") from None
            time.sleep(0.01)


# The host keeps a 100k-entry manifest for hours while sync traffic comes and goes:
# with pymalloc, its 1 MiB arenas stay mapped as long as one live object sits in them, and
# a first sync of 100k files leaves ~30 MB mapped that way; glibc's malloc plus a trim
# after each command (server.release_heap) gives it back, and two malloc arenas instead of
# one per thread keep threads' free lists from holding more (issue 21, measured with
# benchmarks/bench_large.py: 132 -> 104 -> 100 MB). A variable the user set is left alone;
# the ones we set are named in HOST_MALLOC_MARK and dropped by the host at start
# (server.serve), so nothing it starts inherits them.
HOST_MALLOC_MARK = "MODAL_OFFLOAD_HOST_MALLOC"
HOST_MALLOC = {"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"}


def host_environment(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    ours = {k: v for k, v in HOST_MALLOC.items() if k not in env}
    if ours:
        env.update(ours)
        env[HOST_MALLOC_MARK] = ",".join(sorted(ours))
    return env


def spawn(location: Location) -> int:
    """Start `modal-offload host serve` detached; return its pid."""
    import subprocess

    # Truncated at each start: only what a host prints before its log is set up (a crash
    # at import) lands here; everything else goes to the rotated log in the state folder.
    log = open_private(location.log, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
    try:
        # Its own session, no inherited std streams: a caller capturing our output (a test,
        # `$(...)`) must see EOF when we exit, not when the host does.
        proc = subprocess.Popen(
            [sys.executable, "-m", "modal_offload", "host", "serve"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            close_fds=True, cwd="/", env=host_environment(os.environ))
    finally:
        os.close(log)
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited = 0
    if waited == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connect_or_start(location: Location) -> _socket.socket:
    """Connect to the host, starting it first when none is listening."""
    sock = connect(location)
    if sock is not None:
        return sock
    location.ensure_private_dir()
    lock = _lock_start(location)
    try:
        sock = connect(location)  # another client may have started it meanwhile
        if sock is not None:
            return sock
        try:  # noqa: SIM105 - no contextlib on this path
            os.unlink(location.socket)  # stale: its host died without cleaning up
        except FileNotFoundError:
            pass
        pid = spawn(location)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            sock = connect(location)
            if sock is not None:
                return sock
            if not _alive(pid):
                raise HostUnavailable(f"the host exited at start (see {location.log})")
            time.sleep(0.005)
        raise HostUnavailable(f"the host did not start within {START_TIMEOUT_SECONDS:g}s "
                              f"(see {location.log})")
    finally:
        os.close(lock)


def wait_gone(location: Location, timeout: float = 10.0) -> bool:
    """True once nothing listens on the socket (used after asking a host to retire)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock = connect(location)
        if sock is None:
            return True
        sock.close()
        time.sleep(0.01)
    return False
