"""Drive a program through a real pseudo-terminal, as a person at a keyboard would (issue 16).

`Terminal` starts a command as the session leader of a new pty (its controlling terminal,
stdin, stdout and stderr) and reads what the screen would show until expected bytes appear or
a deadline passes: never sleep-then-assert.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str],
                 rows: int = 33, cols: int = 101) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.screen = bytearray()  # everything shown so far
        self._seen = 0  # `expect` consumed up to here
        self.before = self.stty()
        self.proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=self.slave, stdout=self.slave,
            stderr=self.slave, start_new_session=True, preexec_fn=_take_terminal)

    def stty(self) -> bytes:
        """`stty -a` of the terminal, as the user's shell would print it afterwards."""
        return subprocess.run(["stty", "-a"], stdin=self.slave, capture_output=True,
                              check=True).stdout

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def resize(self, rows: int, cols: int) -> None:
        """The window is resized: the kernel sends SIGWINCH to the program on it."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:
            return False
        self.screen += chunk
        return bool(chunk)

    def expect(self, wanted: bytes, timeout: float = 30.0) -> bytes:
        """Read until `wanted` shows after the previous match; returns what came before it."""
        deadline = time.monotonic() + timeout
        while True:
            at = self.screen.find(wanted, self._seen)
            if at >= 0:
                before = bytes(self.screen[self._seen:at])
                self._seen = at + len(wanted)
                return before
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{wanted!r} did not show within {timeout}s; screen:\n"
                                     f"{bytes(self.screen[-3000:])!r}")
            self._read(min(left, 0.5))

    def wait(self, timeout: float = 60.0) -> int:
        """The program's exit code, reading the screen meanwhile (a full pty would block it)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"still running after {timeout}s; screen:\n"
                                     f"{bytes(self.screen[-3000:])!r}")
            self._read(0.05)
        while self._read(0.05):
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
