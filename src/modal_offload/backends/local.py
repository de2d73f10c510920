"""The local sandbox backend: a persistent scratch folder per session on this machine.

It stands for a remote container. The workspace reaches it only through the sync path
(tar streams over `exec`), never through the shared filesystem, so every test that uses it
exercises exactly what a real remote gets. It is also useful on its own: a clean-room copy
of the workspace in which a command can run and whose changes come back reviewed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal as _signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .. import paths
from ..errors import BackendError
from ..fileio import atomic_write_text, exclusive
from ._base import Backend, Process, PtySpec, Session, SessionInfo, SessionSpec
from ._pty import PtyProcess, open_pty, spawn_on_pty

_CHUNK = 64 * 1024
# A command's stdin pipe holds 1 MiB (Linux's pipe-max-size default): a sync streams MBs
# through it, and with a 64 KiB pipe sender and receiver take turns, each waiting for the
# other, 16 times per MiB (a network link buffers far more). Best effort.
_PIPE_SIZE = 1 << 20


def _clean_path() -> str:
    """Host PATH without our shims, so a command in the sandbox never routes back to us."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    keep = [p for p in parts if p and Path(p).name != paths.SHIMS_DIRNAME]
    bindir = str(Path(sys.executable).parent)
    return os.pathsep.join([bindir, *[p for p in keep if p != bindir]])


class LocalProcess(Process):
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self._stdin_lock = threading.Lock()
        if popen.stdin is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
            with contextlib.suppress(OSError):  # over a user's pipe quota: a smaller pipe
                fcntl.fcntl(popen.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)

    def write_stdin(self, data: bytes) -> None:
        stdin = self._popen.stdin
        assert stdin is not None
        with self._stdin_lock:
            try:
                stdin.write(data)
                stdin.flush()
            except (BrokenPipeError, ValueError):
                pass  # the process closed its stdin or exited: the rest is not wanted

    def close_stdin(self) -> None:
        with self._stdin_lock:
            stdin = self._popen.stdin
            if stdin is not None and not stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    stdin.close()

    @staticmethod
    def _chunks(pipe: IO[bytes] | None) -> Iterator[bytes]:
        assert pipe is not None
        fd = pipe.fileno()
        try:
            while True:
                data = os.read(fd, _CHUNK)
                if not data:
                    return
                yield data
        finally:
            pipe.close()

    def stdout_chunks(self) -> Iterator[bytes]:
        return self._chunks(self._popen.stdout)

    def stderr_chunks(self) -> Iterator[bytes]:
        return self._chunks(self._popen.stderr)

    def wait(self) -> int:
        code = self._popen.wait()
        return 128 - code if code < 0 else code

    def signal(self, sig: int = _signal.SIGTERM) -> None:
        # Also after the leader exited: stragglers in its group (a shell's background
        # jobs, which ignore SIGINT) must stop too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, sig)


class LocalSession(Session):
    backend_name = "local"
    compress_sync = False  # a pipe on this machine: compressing would only cost CPU

    def __init__(self, base: Path, meta: dict[str, Any], fresh: bool) -> None:
        self._base = base
        self._meta = meta
        self.name = meta["name"]
        self.id = meta["id"]
        self.root = str(base / "workspace")
        self.state_dir = str(base / "state")
        self.python = sys.executable
        self.fresh = fresh
        self.created_at = float(meta["created_at"])
        self.deadline = self.created_at + float(meta["timeout_seconds"])

    def exec(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
             pty: PtySpec | None = None) -> Process:
        if not Path(self._base).is_dir():
            raise BackendError(f"local session {self.name} is gone", "run the command again")
        full_env = {"PATH": _clean_path(), "HOME": str(self._base / "home")}
        full_env.update(env)
        Path(cwd).mkdir(parents=True, exist_ok=True)
        self._meta["last_used_at"] = time.time()
        self._meta["exec_count"] = int(self._meta.get("exec_count", 0)) + 1
        _write_meta(self._base, self._meta)
        if pty is not None:
            master, slave = open_pty(pty.rows, pty.cols)
            if pty.term:
                full_env["TERM"] = pty.term
            if pty.colorterm:
                full_env["COLORTERM"] = pty.colorterm
            return PtyProcess(spawn_on_pty(list(argv), cwd=cwd, env=full_env, slave=slave),
                              master)
        try:
            popen = subprocess.Popen(
                list(argv), cwd=cwd, env=full_env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )
        except FileNotFoundError:
            # As a container would: the shell's convention for "command not found".
            popen = subprocess.Popen(
                ["sh", "-c", 'echo "$0: command not found" >&2; exit 127', argv[0]],
                cwd=cwd, env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True,
            )
        except PermissionError:
            popen = subprocess.Popen(
                ["sh", "-c", 'echo "$0: permission denied" >&2; exit 126', argv[0]],
                cwd=cwd, env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True,
            )
        return LocalProcess(popen)

    def snapshot(self) -> str:
        """A copy of the session's folders beside the sessions (symlinks kept as links)."""
        target = self._base.parent / ".snapshots" / os.urandom(16).hex()
        for sub in _SNAPSHOT_DIRS:
            shutil.copytree(self._base / sub, target / sub, symlinks=True)
        return str(target)

    def terminate(self) -> None:
        shutil.rmtree(self._base, ignore_errors=True)

    def info(self) -> SessionInfo:
        return _info(self._base, self._meta)


_SNAPSHOT_DIRS = ("workspace", "state", "home")


def _meta_path(base: Path) -> Path:
    return base / "session.json"


def _write_meta(base: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(_meta_path(base), json.dumps(meta, indent=2))


def _read_meta(base: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(_meta_path(base).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _end(meta: dict[str, Any]) -> float:
    """When a local sandbox ends (or ended): its deadline or its idle timeout, first."""
    return min(float(meta.get("created_at", 0)) + float(meta.get("timeout_seconds", 0)),
               float(meta.get("last_used_at", 0)) + float(meta.get("idle_timeout_seconds", 0)))


def _alive(meta: dict[str, Any]) -> bool:
    now = time.time()
    deadline = float(meta.get("created_at", 0)) + float(meta.get("timeout_seconds", 0))
    idle_deadline = float(meta.get("last_used_at", 0)) + float(meta.get("idle_timeout_seconds", 0))
    return now < deadline and now < idle_deadline


def _info(base: Path, meta: dict[str, Any]) -> SessionInfo:
    return SessionInfo(
        backend="local", name=meta["name"], id=meta["id"], alive=_alive(meta),
        created_at=meta.get("created_at"), last_used_at=meta.get("last_used_at"),
        root=str(base / "workspace"),
        detail={"path": str(base), "exec_count": meta.get("exec_count", 0),
                "timeout_seconds": meta.get("timeout_seconds"),
                "idle_timeout_seconds": meta.get("idle_timeout_seconds")},
    )


class LocalBackend(Backend):
    name = "local"

    def __init__(self, root: Path | None = None) -> None:
        self._root = root or paths.sandboxes_dir()

    def unavailable_reason(self) -> str | None:
        return None

    def _base(self, spec_name: str) -> Path:
        return self._root / spec_name

    def find_session(self, spec: SessionSpec) -> Session | None:
        base = self._base(spec.name)
        meta = _read_meta(base)
        if meta is None or not _alive(meta):
            return None
        return LocalSession(base, meta, fresh=False)

    def open_session(self, spec: SessionSpec) -> Session:
        base = self._base(spec.name)
        with exclusive(base.with_suffix(".open")):
            meta = _read_meta(base)
            if meta is not None and _alive(meta):
                # Budget may have shrunk since creation: keep the provider-side cap honest.
                timeout = min(float(meta["timeout_seconds"]),
                              time.time() - float(meta["created_at"]) + spec.timeout_seconds)
                if (timeout, spec.idle_timeout_seconds) != (
                        meta["timeout_seconds"], meta.get("idle_timeout_seconds")):
                    meta["timeout_seconds"] = timeout
                    meta["idle_timeout_seconds"] = spec.idle_timeout_seconds
                    meta["last_used_at"] = time.time()
                    _write_meta(base, meta)
                # Else nothing to write: the command's exec marks the use (a durable write
                # less per command, issue 17).
                return LocalSession(base, meta, fresh=False)
            # Dead, expired or never created: start from an empty container, like a provider.
            ended = {} if meta is None else {str(meta["id"]): _end(meta)}
            timeout = spec.granted_timeout()  # may raise BudgetExhausted: nothing removed yet
            shutil.rmtree(base, ignore_errors=True)
            for sub in _SNAPSHOT_DIRS:
                if spec.seed:
                    seed = Path(spec.seed)
                    if seed.parent != self._root / ".snapshots" or not (seed / sub).is_dir():
                        raise BackendError(f"no such local snapshot: {spec.seed}",
                                           "run the batch again")
                    shutil.copytree(seed / sub, base / sub, symlinks=True)
                else:
                    (base / sub).mkdir(parents=True, exist_ok=True)
            now = time.time()
            # os.urandom, not uuid (which loads `platform`, ~2 ms per in-process command).
            meta = {"name": spec.name, "id": f"ls-{os.urandom(11).hex()}",
                    "created_at": now, "last_used_at": now,
                    "timeout_seconds": timeout,
                    "idle_timeout_seconds": spec.idle_timeout_seconds,
                    "workspace": str(spec.workspace), "cpu": spec.cpu,
                    "memory_mb": spec.memory_mb, "exec_count": 0}
            _write_meta(base, meta)
            session = LocalSession(base, meta, fresh=True)
            session.ended = ended
            return session

    def drop_snapshot(self, handle: str) -> None:
        path = Path(handle)
        if path.parent == self._root / ".snapshots":
            shutil.rmtree(path, ignore_errors=True)

    def list_sessions(self, app_name: str) -> list[SessionInfo]:
        if not self._root.is_dir():
            return []
        out = []
        for base in sorted(self._root.iterdir()):
            meta = _read_meta(base) if base.is_dir() else None
            if meta is not None:
                out.append(_info(base, meta))
        return out
