"""The client's side of an interactive command (issue 16): whether the remote gets a
terminal, what size and type, and the local terminal in raw mode for the duration.

Raw mode is always undone: by `RawMode.__exit__` on every normal path (exit, remote death,
errors, forwarded signals), and when our client dies without running it (SIGKILL, a crash)
by a watchdog: a forked child that holds the saved settings, blocks reading a pipe only the
client can write to, and restores the terminal when that pipe closes without the client's
"done" byte. Interactive shells also reset the terminal after a job killed by a signal; the
watchdog does not rely on that (a client started from a script has no such shell).

Standard library only (termios, tty): the thin client imports this.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # see host/protocol.py: no typing on the client's path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DEFAULT_SIZE = (24, 80)


def isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def wants_pty(tty: bool | None, stdin_fd: int = 0, stdout_fd: int = 1) -> bool:
    """`exec -t` forces a remote terminal, `-T` forbids one; otherwise one exactly when
    stdin and stdout are both terminals (a pipe on either side means a program is reading
    or writing, which needs separate, unmangled streams)."""
    if tty is not None:
        return tty
    return isatty(stdin_fd) and isatty(stdout_fd)


def window_size(*fds: int) -> tuple[int, int]:
    """(rows, cols) of the first terminal among `fds`, else 24x80."""
    import fcntl
    import struct
    import termios

    for fd in fds:
        try:
            rows, cols, _x, _y = struct.unpack(
                "HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            continue
        if rows and cols:
            return rows, cols
    return DEFAULT_SIZE


def pty_request(environ: Mapping[str, str], *fds: int) -> dict[str, object]:
    """What the remote terminal should look like: the local size and TERM/COLORTERM at the
    start (later sizes travel as resizes where the terminal is ours: README, Interactive
    commands)."""
    rows, cols = window_size(*fds)
    return {"rows": rows, "cols": cols, "term": environ.get("TERM", "") or "xterm-256color",
            "colorterm": environ.get("COLORTERM", "")}


class RawMode:
    """Puts terminal `fd` in raw mode (keys travel as bytes: Ctrl-C, Ctrl-D, Ctrl-Z, arrows)
    and restores its exact settings afterwards, even if this process is killed."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None
        self._watchdog: int | None = None
        self._done_w: int | None = None

    def __enter__(self) -> RawMode:
        import termios
        import tty

        if not isatty(self.fd):
            return self
        self._saved = termios.tcgetattr(self.fd)
        self._start_watchdog()
        tty.setraw(self.fd, termios.TCSADRAIN)
        return self

    def _start_watchdog(self) -> None:
        import _signal  # before fork: the child imports nothing; `signal` builds enums
        import termios

        saved = self._saved
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the watchdog: as little as possible, then _exit
            try:
                for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,
                            _signal.SIGTSTP, _signal.SIGTTOU, _signal.SIGTTIN):
                    _signal.signal(sig, _signal.SIG_IGN)  # SIGTTOU: restore from background
                # Hold nothing else of the client's open (its host socket, pipes): whoever
                # waits for their EOF must not wait for us.
                keep = sorted({self.fd, done_r})
                low = 3
                for fd in keep:
                    if fd >= low:
                        os.closerange(low, fd)
                        low = fd + 1
                os.closerange(low, 1 << 16)  # done_w too: only the client may write it
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):  # nor its stdout pipe, should that be one (`-t | tee`)
                    if fd not in keep:
                        os.dup2(null, fd)
                if not os.read(done_r, 1) and saved is not None:
                    termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            finally:
                os._exit(0)
        os.close(done_r)
        self._watchdog, self._done_w = pid, done_w

    def __exit__(self, *_exc: object) -> None:
        import termios

        if self._saved is None:
            return
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        except termios.error:
            pass  # the terminal is gone (hang-up): nothing left to restore
        finally:
            self._saved = None
            if self._done_w is not None:
                try:  # noqa: SIM105 - no contextlib on the client's path
                    os.write(self._done_w, b"x")
                except OSError:
                    pass
                os.close(self._done_w)
                self._done_w = None
            if self._watchdog is not None:
                try:  # noqa: SIM105
                    os.waitpid(self._watchdog, 0)
                except OSError:
                    pass
                self._watchdog = None
