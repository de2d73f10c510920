"""Which programs the remote image has, cached per backend and image hash (issue 12).

A fresh session lists the executables on its PATH once (one `sh` exec, no Python); the list
is stored under the image hash, so every later command decides "is `X` there?" from a small
file (memoized in the session host) and never reaches the remote just to print
`command not found`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable

from .. import paths
from ..backends._base import Session
from ..errors import OffloadError
from ..fileio import atomic_write_text

# Every executable file on the session's PATH, one name per line, first hit wins.
LIST_PROGRAMS = ('IFS=:; for d in $PATH; do for f in "$d"/*; do '
                 '[ -f "$f" ] && [ -x "$f" ] && echo "${f##*/}"; done; done; exit 0')

_MEMO: dict[str, tuple[float, frozenset[str]]] = {}
_LOCK = threading.Lock()


class MissingProgram(OffloadError):
    """A routed command whose program the remote image lacks."""

    exit_code = 125

    def __init__(self, program: str) -> None:
        super().__init__(f"{program} is not in the remote image",
                         f'add `[image] apt = ["{program}"]` (or the package that provides '
                         f"it) to .modal-offload.toml, or `[image] pip`")
        self.program = program


def _path(backend: str, image_hash: str) -> str:
    return str(paths.cache_dir() / "images" / "programs" / f"{backend}-{image_hash}.json")


def known(backend: str, image_hash: str) -> frozenset[str] | None:
    """The program names of this image, or None when never listed."""
    path = _path(backend, image_hash)
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    with _LOCK:
        hit = _MEMO.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    try:
        with open(path, "rb") as fh:
            names = frozenset(json.load(fh)["programs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    with _LOCK:
        _MEMO[path] = (mtime, names)
    return names


def store(backend: str, image_hash: str, names: Iterable[str]) -> frozenset[str]:
    found = frozenset(n for n in names if n and "/" not in n)
    from pathlib import Path

    atomic_write_text(Path(_path(backend, image_hash)),
                      json.dumps({"version": 1, "programs": sorted(found)}))
    return found


def list_remote(session: Session) -> frozenset[str]:
    process = session.exec(["sh", "-c", LIST_PROGRAMS], cwd=session.root, env={})
    process.close_stdin()
    out = b"".join(process.stdout_chunks())
    for _ in process.stderr_chunks():
        pass
    if process.wait() != 0:
        return frozenset()
    return frozenset(out.decode("utf-8", "replace").split())


def program_of(argv: list[str] | tuple[str, ...]) -> str | None:
    """The bare program name a command starts, or None when it names a path (`./x`,
    `/usr/bin/x`): a path may come from the workspace itself, which the sync sends."""
    if not argv or "/" in argv[0] or not argv[0]:
        return None
    return argv[0]
