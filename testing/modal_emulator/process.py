"""Real subprocesses with captured, replayable stdio.

Every process (a sandbox entrypoint or an exec) runs in its own session and therefore its own
process group, so that killing "the command" also kills whatever it spawned, the way tearing
down a container would. Output is kept in memory in full, so a reader can (re)start at any byte
offset: that is what makes `TaskExecStdioRead` resumable after a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# How much a single pipe read may return; the router may split it further (see faults).
_PIPE_READ_SIZE = 64 * 1024


class OutputBuffer:
    """Append-only byte stream that readers can consume from any offset.

    Readers block (on a condition, not by polling) until bytes past their offset exist or the
    stream is closed.
    """

    def __init__(self) -> None:
        self._data = bytearray()
        self._closed = False
        self._cond = asyncio.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._data)

    def getvalue(self) -> bytes:
        return bytes(self._data)

    async def append(self, chunk: bytes) -> None:
        if not chunk:
            return
        async with self._cond:
            self._data.extend(chunk)
            self._cond.notify_all()

    async def close(self) -> None:
        async with self._cond:
            self._closed = True
            self._cond.notify_all()

    async def read(self, offset: int, max_bytes: int) -> bytes | None:
        """Return up to `max_bytes` starting at `offset`, waiting for them; None at EOF."""
        async with self._cond:
            await self._cond.wait_for(lambda: len(self._data) > offset or self._closed)
            if len(self._data) > offset:
                return bytes(self._data[offset : offset + max_bytes])
            return None


@dataclass(frozen=True)
class PtyOptions:
    """An exec's pseudo-terminal (from the request's `PTYInfo`)."""

    rows: int
    cols: int
    term: str = ""
    colorterm: str = ""
    # False: the spawned process does not take the terminal; the command it runs does
    # (`setsid -c` inside a rootfs container, so that nsenter stays out of the terminal's
    # session and a typed Ctrl-C reaches only the command).
    take_terminal: bool = True


async def _ready(fd: int, *, write: bool) -> None:
    """Wait until `fd` is readable (or writable) in the running loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await done
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


def _take_terminal() -> None:  # in the child after setsid(): one ioctl, nothing else
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class ManagedProcess:
    """One subprocess in its own process group, with stdio captured into `OutputBuffer`s.

    With `pty`, the process is the session leader of a new pseudo-terminal of that size
    (its controlling terminal), as a Modal exec with `pty_info` is: stdin is typed into the
    terminal, stdout is everything the terminal shows (stdout and stderr merged, echo and
    CRLF included; modal/sandbox/_sandbox.py:1210 "all output ... is multiplexed into
    stdout, and the stderr stream is effectively empty"), and stdin EOF is not a thing a
    terminal has (the client types Ctrl-D).
    """

    def __init__(self, argv: Sequence[str], pty: PtyOptions | None = None) -> None:
        self.argv = list(argv)
        self.pty = pty
        self._master: int | None = None
        self.stdout = OutputBuffer()
        self.stderr = OutputBuffer()
        self.exited = asyncio.Event()
        # Exactly one of these is set once `exited` is set.
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.stdin_offset = 0  # bytes accepted into stdin so far (for idempotent retries)
        self.stdin_closed = False
        self._proc: asyncio.subprocess.Process | None = None
        self._stdin_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(
        self,
        *,
        cwd: Path,
        env: Mapping[str, str],
        capture_stdout: bool = True,
        capture_stderr: bool = True,
    ) -> None:
        """Spawn the process. A spawn failure behaves like a shell's: exit code 127 or 126."""
        if self.pty is not None:
            await self._start_on_pty(cwd, env, self.pty)
            return
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=str(cwd),
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE if capture_stderr else subprocess.DEVNULL,
                # New session => new process group whose id is the child's pid; lets us
                # signal the whole tree with killpg.
                start_new_session=True,
            )
        except OSError as exc:
            # Mirror what `sh -c` would report, so callers see a normal failed command rather
            # than an RPC error. (Modal's exact behaviour here is not documented.)
            code = 126 if isinstance(exc, PermissionError) else 127
            if capture_stderr:
                await self.stderr.append(
                    f"{self.argv[0] if self.argv else ''}: {exc.strerror}\n".encode()
                )
            await self.stdout.close()
            await self.stderr.close()
            self.stdin_closed = True
            self.exit_code = code
            self.exited.set()
            return

        for buf, pipe in ((self.stdout, self._proc.stdout), (self.stderr, self._proc.stderr)):
            if pipe is None:
                await buf.close()
            else:
                self._tasks.append(asyncio.create_task(self._pump(pipe, buf)))
        self._tasks.append(asyncio.create_task(self._reap()))

    async def _start_on_pty(self, cwd: Path, env: Mapping[str, str], pty: PtyOptions) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", max(pty.rows, 1) if pty.rows else 24,
                                max(pty.cols, 1) if pty.cols else 80, 0, 0))
        full_env = dict(env)
        if pty.term:
            full_env["TERM"] = pty.term
        if pty.colorterm:
            full_env["COLORTERM"] = pty.colorterm
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=str(cwd), env=full_env, stdin=slave, stdout=slave,
                stderr=slave, start_new_session=True,
                preexec_fn=_take_terminal if pty.take_terminal else None)
        except OSError as exc:
            os.close(master)
            await self.stdout.append(
                f"{self.argv[0] if self.argv else ''}: {exc.strerror}\r\n".encode())
            await self.stdout.close()
            await self.stderr.close()
            self.stdin_closed = True
            self.exit_code = 126 if isinstance(exc, PermissionError) else 127
            self.exited.set()
            return
        finally:
            os.close(slave)
        self._master = master
        await self.stderr.close()
        self._tasks.append(asyncio.create_task(self._pump_terminal(master)))
        self._tasks.append(asyncio.create_task(self._reap()))

    async def _pump_terminal(self, master: int) -> None:
        """Copy the terminal's output until every holder of its slave side is gone (EIO)."""
        os.set_blocking(master, False)  # the event loop waits; no thread per terminal
        try:
            while True:
                try:
                    chunk = os.read(master, _PIPE_READ_SIZE)
                except BlockingIOError:
                    await _ready(master, write=False)
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        break
                    raise
                if not chunk:
                    break
                await self.stdout.append(chunk)
        finally:
            async with self._stdin_lock:
                self._master = None
                os.close(master)
            await self.stdout.close()

    async def _pump(self, pipe: asyncio.StreamReader, buf: OutputBuffer) -> None:
        try:
            while chunk := await pipe.read(_PIPE_READ_SIZE):
                await buf.append(chunk)
        finally:
            await buf.close()

    async def _reap(self) -> None:
        assert self._proc is not None
        rc = await self._proc.wait()
        if rc < 0:
            self.exit_signal = -rc
        else:
            self.exit_code = rc
        self.exited.set()

    async def write_stdin(self, offset: int, data: bytes, eof: bool) -> None:
        """Write `data`, which the client says starts at byte `offset` of the stdin stream.

        Bytes before `self.stdin_offset` were already delivered by an earlier (retried) call
        and are skipped, so client retries are idempotent. A gap is a client bug.
        """
        async with self._stdin_lock:
            if offset > self.stdin_offset:
                raise ValueError(
                    f"stdin offset {offset} is past the {self.stdin_offset} bytes written so far"
                )
            data = data[self.stdin_offset - offset :]
            if self.pty is not None:
                await self._type(data)
                self.stdin_offset += len(data)
                self.stdin_closed = self.stdin_closed or eof
                return
            pipe = self._proc.stdin if self._proc else None
            if data and not self.stdin_closed and pipe is not None:
                # A process that has exited (or closed stdin) just loses the bytes, as with a
                # real pipe whose reader went away.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    pipe.write(data)
                    await pipe.drain()
            self.stdin_offset += len(data)
            if eof and not self.stdin_closed:
                self.stdin_closed = True
                if pipe is not None:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        pipe.close()

    async def _type(self, data: bytes) -> None:
        """Into the terminal (called under the stdin lock, which guards `_master`)."""
        master = self._master
        if master is None or not data:
            return  # the terminal is gone: the bytes are lost, as typing into a closed one
        view = memoryview(data)
        while view:
            try:
                written = os.write(master, view)
            except BlockingIOError:  # the terminal's input queue is full: wait, as typing would
                await _ready(master, write=True)
                continue
            except OSError:
                return
            view = view[written:]

    def signal_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process group (the process and everything it spawned in its session)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def wait(self) -> None:
        await self.exited.wait()

    async def wait_drained(self) -> None:
        """Wait until the process exited and both output pipes hit EOF."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
