"""A process on a new pseudo-terminal of this machine, for the local backend (issue 16).

The child becomes the session leader of the terminal's slave side with it as controlling
terminal (TIOCSCTTY), as `modal shell`'s exec would be on Modal: Ctrl-C typed as a byte
reaches its foreground process group through the line discipline, `stty size` reports the
size given, and stdout and stderr are one stream (the master side).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal as _signal
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator, Mapping, Sequence

from ._base import Process

_CHUNK = 64 * 1024


def open_pty(rows: int, cols: int) -> tuple[int, int]:
    """(master, slave), the slave already sized; both close-on-exec."""
    master, slave = os.openpty()
    set_size(slave, rows, cols)
    return master, slave


def set_size(fd: int, rows: int, cols: int) -> None:
    rows, cols = (min(max(n, 1), 0xFFFF) for n in (rows, cols))  # what a winsize holds
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_terminal() -> None:  # runs in the child, after setsid(): keep it to one syscall
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def spawn_on_pty(argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
                 slave: int) -> subprocess.Popen[bytes]:
    """Start `argv` with the slave as its stdin/stdout/stderr and controlling terminal.
    Closes `slave` in this process (the master then sees EOF when the child's side closes).
    A missing or non-executable program reports as a shell would (127/126) on the terminal."""
    def start(args: Sequence[str]) -> subprocess.Popen[bytes]:
        # preexec_fn only issues one ioctl: no locks, no imports in the forked child.
        return subprocess.Popen(list(args), cwd=cwd, env=dict(env), stdin=slave, stdout=slave,
                                stderr=slave, start_new_session=True,
                                preexec_fn=_take_terminal)

    try:
        try:
            return start(argv)
        except FileNotFoundError:
            return start(["sh", "-c", 'echo "$0: command not found" >&2; exit 127', argv[0]])
        except PermissionError:
            return start(["sh", "-c", 'echo "$0: permission denied" >&2; exit 126', argv[0]])
    finally:
        os.close(slave)


class PtyProcess(Process):
    """The master side of a terminal whose session leader is `popen`."""

    def __init__(self, popen: subprocess.Popen[bytes], master: int) -> None:
        self._popen = popen
        self._master = master
        # Reentrant: `resize` runs in a signal handler (SIGWINCH, in-process), which a
        # second SIGWINCH may interrupt while it holds the lock.
        self._lock = threading.RLock()
        self._closed = False

    def write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        # Under the lock, so a closed master's number (reused by another file) is never
        # written; a blocked write ends with EIO when the terminal's last user goes.
        with self._lock:
            while view and not self._closed:
                try:
                    view = view[os.write(self._master, view):]
                except OSError:
                    return  # the terminal is gone (EIO once the session ended): like EPIPE

    def close_stdin(self) -> None:
        """A terminal has no EOF of its own: the typed Ctrl-D byte is the user's EOF."""

    def stdout_chunks(self) -> Iterator[bytes]:
        try:
            while True:
                try:
                    data = os.read(self._master, _CHUNK)
                except OSError as exc:
                    if exc.errno == errno.EIO:  # Linux: every slave fd is closed
                        return
                    raise
                if not data:
                    return
                yield data
        finally:
            with self._lock:
                if not self._closed:
                    self._closed = True
                    os.close(self._master)

    def stderr_chunks(self) -> Iterator[bytes]:
        return iter(())  # merged into stdout by the terminal

    def wait(self) -> int:
        code = self._popen.wait()
        return 128 - code if code < 0 else code

    def signal(self, sig: int = _signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, sig)

    def resize(self, rows: int, cols: int) -> bool:
        # The kernel signals SIGWINCH to the terminal's foreground group on a new size.
        with self._lock:
            if self._closed:
                return False
            with contextlib.suppress(OSError):
                set_size(self._master, rows, cols)
                return True
        return False
