"""Where the host lives on disk, and finding, starting and replacing it.

Light on purpose (stdlib only, no pathlib/platformdirs: ~18 ms of imports the thin
client does not pay). `runtime_dir()` mirrors `paths.runtime_dir()`; a test keeps the two
in step.

One host serves one *configuration*: the socket name carries a hash of the environment
that decides where the ledger, state and credentials live and which interpreter runs us,
so a client with another HOME or Modal profile never talks to a host that would charge
another ledger.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

APP = "modal-offload"
START_TIMEOUT_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 5.0
# Variables that decide which files and credentials the host would use.
_KEY_NAMES = ("HOME", "PRIMARY_MODAL_USAGE_FILE", "MODAL_CONFIG_PATH", "MODAL_PROFILE",
              "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_SERVER_URL", "MODAL_ENVIRONMENT")
_KEY_PREFIXES = ("XDG_", "MODAL_OFFLOAD_")
_KEY_SUFFIX = "_DIR"


class HostUnavailable(Exception):
    """The host cannot be reached or started; the caller runs in-process instead."""


def runtime_dir(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    override = env.get("MODAL_OFFLOAD_RUNTIME_DIR")
    if override:
        return os.path.expanduser(override)
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, APP)
    return f"/tmp/{APP}-{os.getuid()}"


def config_key(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    names = [n for n in env if n in _KEY_NAMES
             or (n.startswith(_KEY_PREFIXES) and n.endswith(_KEY_SUFFIX))
             or (n.startswith("XDG_"))]
    h = hashlib.sha256(f"{sys.executable}\0{__file__}".encode())
    for name in sorted(names):
        h.update(f"\0{name}={env[name]}".encode())
    return h.hexdigest()[:12]


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
        fallback another user could have made it first to catch our commands."""
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            st = os.lstat(self.dir)
        except OSError as exc:
            raise HostUnavailable(f"cannot create {self.dir} ({exc.strerror})") from None
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise HostUnavailable(f"{self.dir} is not a folder owned by this user")
        if st.st_mode & 0o077:
            try:
                os.chmod(self.dir, 0o700)
            except OSError:
                raise HostUnavailable(f"{self.dir} is not private (mode "
                                      f"{st.st_mode & 0o777:o})") from None

    def read_pidfile(self) -> dict[str, Any] | None:
        try:
            with open(self.pidfile, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _in_dir_of(path: str) -> Iterator[str]:
    """A socket address for `path`: AF_UNIX paths are limited to 107 bytes, so long ones go
    through /proc/self/fd/N (Linux) of an open handle on the folder."""
    if len(path.encode()) < 100:
        yield path
        return
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


def bind(sock: socket.socket, path: str) -> None:
    with _in_dir_of(path) as address:
        sock.bind(address)


def connect(location: Location) -> socket.socket | None:
    """A connection to a live host, or None when nobody listens (no or stale socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
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
    sock.settimeout(None)
    return sock


@contextlib.contextmanager
def start_lock(location: Location, timeout: float = START_TIMEOUT_SECONDS) -> Iterator[None]:
    """Held while checking for and starting a host, so two clients never start two."""
    fd = os.open(location.start_lock, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HostUnavailable("another client is starting the host and "
                                          "did not finish") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


def spawn(location: Location) -> int:
    """Start `modal-offload host serve` detached; return its pid."""
    import subprocess

    log = os.open(location.log, os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        # Its own session, no inherited std streams: a caller capturing our output (a test,
        # `$(...)`) must see EOF when we exit, not when the host does.
        proc = subprocess.Popen(
            [sys.executable, "-m", "modal_offload", "host", "serve"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            close_fds=True, cwd="/")
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


def connect_or_start(location: Location) -> socket.socket:
    """Connect to the host, starting it first when none is listening."""
    sock = connect(location)
    if sock is not None:
        return sock
    location.ensure_private_dir()
    with start_lock(location):
        sock = connect(location)  # another client may have started it meanwhile
        if sock is not None:
            return sock
        with contextlib.suppress(FileNotFoundError):
            os.unlink(location.socket)  # stale: its host died without cleaning up
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
