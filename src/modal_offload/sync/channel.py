"""One run of the remote sync agent: start it, pump its stderr, turn failure into SyncError."""

from __future__ import annotations

import collections
import contextlib
import posixpath
import signal
import threading
from collections.abc import Sequence

from ..backends._base import Process, Session
from ..errors import SyncError
from .ignore import HARD_NAMES
from .remote import STAMP_NAME

AGENT_MODULE = "modal_offload.sync.remote"
_STDERR_KEEP = 16 * 1024


def agent_argv(session: Session, *args: str) -> list[str]:
    """`<remote python> -I ... modal_offload.sync.remote <args>` (see Session.module_argv)."""
    return session.module_argv(AGENT_MODULE, *args)


def state_dir(session: Session) -> str:
    """Where the agent keeps its manifest: beside the workspace copy, never inside it."""
    return f"{session.state_dir.rstrip('/')}/sync"


def agent_paths(session: Session) -> list[str]:
    """`--root`/`--state` relative to the agent's cwd (session.root): a backend may map
    only working directories to sandbox paths, not argv (the Modal emulator does that)."""
    return ["--root", ".", "--state", posixpath.relpath(state_dir(session), session.root)]


def remote_unchanged(session: Session) -> bool:
    """True only when nothing in the remote tree changed since the last collect.

    One exec of `find` (no Python start, ~40 ms less per command): it prints the first
    entry whose ctime is newer than the stamp the last collect left. Any failure (no stamp
    yet, no GNU find) means "maybe changed", and the full collect runs.
    """
    stamp = posixpath.join(posixpath.relpath(state_dir(session), session.root), STAMP_NAME)
    prune = [arg for name in sorted(HARD_NAMES) for arg in ("-name", name, "-o")][:-1]
    argv = ["find", ".", "(", *prune, ")", "-prune", "-o", "-cnewer", stamp, "-print", "-quit"]
    try:
        process = session.exec(argv, cwd=session.root, env={})
        process.close_stdin()
        out = b"".join(process.stdout_chunks())
        for _ in process.stderr_chunks():
            pass
        return process.wait() == 0 and out == b""
    except Exception:  # the full collect that follows reports real trouble
        return False


class AgentRun:
    """A started agent. Use `finish()` on success paths and `abort()` on failures."""

    def __init__(self, session: Session, args: Sequence[str], what: str,
                 process: Process | None = None) -> None:
        """`process`: one already started (by the session, for us), instead of `args`."""
        self.what = what
        self.process: Process = process or session.exec(agent_argv(session, *args),
                                                        cwd=session.root, env={})
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._pump = threading.Thread(target=self._read_stderr, daemon=True,
                                      name="sync-agent-stderr")
        self._pump.start()

    def _read_stderr(self) -> None:
        # Drained continuously so a chatty agent never blocks on a full pipe.
        for chunk in self.process.stderr_chunks():
            self._stderr.append(chunk)
            self._stderr_size += len(chunk)
            while self._stderr_size > _STDERR_KEEP and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())

    def stderr_tail(self, limit: int = 400) -> str:
        """The last lines of the agent's stderr, as one line."""
        self._pump.join(timeout=5)
        text = b"".join(self._stderr).decode("utf-8", "replace")
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        tail = " | ".join(lines[-4:])
        return tail if len(tail) <= limit else "..." + tail[-limit:]

    def finish(self) -> None:
        """Wait for exit; a non-zero status raises SyncError with the stderr tail."""
        code = self.process.wait()
        self._pump.join(timeout=5)
        if code != 0:
            raise SyncError(f"{self.what} failed: the remote sync agent exited with {code}",
                            self.stderr_tail() or "no output on stderr")

    def finish_later(self) -> None:
        """`finish()` in the background, a failure logged (see WorkspaceSync.back)."""
        def run() -> None:
            try:
                self.finish()
            except SyncError as exc:
                import logging  # not on every command's path: ~2 ms (issue 17)

                logging.getLogger("modal_offload.sync").warning("%s", exc.one_line())

        threading.Thread(target=run, name="sync-agent-finish", daemon=True).start()

    def abort(self) -> None:
        """Stop the agent after a local failure; never raises."""
        with contextlib.suppress(Exception):
            self.process.close_stdin()
        with contextlib.suppress(Exception):
            self.process.signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            self.process.wait()
        self._pump.join(timeout=5)
