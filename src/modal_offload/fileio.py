"""Atomic writes and inter-process locks: the only places that touch either."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import OffloadError
from .private import NotPrivate, open_owned

LOCK_TIMEOUT_SECONDS = 60.0
_LOCK_POLL_SECONDS = 0.01
_TEMP_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


def _new_temp(folder: Path, name: str) -> tuple[int, str]:
    """A new file `.<name>.<random>.tmp` in `folder`, opened as `tempfile.mkstemp` opens
    one (O_EXCL, never through a symlink, mode 0600), without importing tempfile: it loads
    shutil, random, bz2 and lzma, ~2 ms on every in-process command (issue 17)."""
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write via a temp file in the same folder, fsync, then rename over the target.

    A crash at any point leaves either the old file or the new one, never a torn one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive(path: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold `<path>.lock` exclusively (flock; each call its own open file, so threads of
    one process exclude each other too).

    The lock file is opened as `private.open_owned` says: a lock another user created
    first, or a symlink planted in a shared folder such as /tmp, is refused, never
    followed or truncated (#13). It is created empty and never written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = f"{path}.lock"
    try:
        fd = open_owned(lock_path, os.O_RDWR | os.O_CREAT)
    except NotPrivate as exc:
        raise OffloadError(f"refusing the lock {lock_path}: {exc}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OffloadError(
                        f"could not lock {path} within {timeout:g}s",
                        "another modal-offload process holds it; retry") from None
                time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
