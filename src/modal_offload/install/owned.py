"""Whole files we own (shims, the agent runner, wrapper scripts): marked, so that only ours
are ever overwritten or removed, and a user's file at the same path is kept as `.legacy`."""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_write_text
from .blocks import Status

MARKER = "modal-offload-owned: 6d0f3b1e"  # constant: identifies our files across versions


def is_owned(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except (FileNotFoundError, IsADirectoryError):
        return False
    return MARKER.encode() in head


def legacy_path(path: Path) -> Path:
    return path.with_name(path.name + ".legacy")


def write(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write our file; a foreign file already there is kept as `<name>.legacy`.
    `text` must contain MARKER. Returns True when something changed."""
    if MARKER not in text:
        raise ValueError("owned files must carry the ownership marker")
    if path.is_symlink() or path.exists():
        if is_owned(path) and not path.is_symlink():
            if path.read_text(encoding="utf-8", errors="replace") == text and \
                    (path.stat().st_mode & 0o777) == mode:
                return False
        else:
            path.replace(legacy_path(path))
    atomic_write_text(path, text, mode=mode)
    return True


def remove(path: Path) -> bool:
    """Remove our file and put back the user's `.legacy` one, if any."""
    if not is_owned(path) or path.is_symlink():
        return False
    path.unlink()
    legacy = legacy_path(path)
    if legacy.exists() or legacy.is_symlink():
        legacy.replace(path)
    return True


def check(path: Path, text: str) -> Status:
    if not (path.exists() or path.is_symlink()):
        return Status.MISSING
    if not is_owned(path):
        return Status.FOREIGN
    return Status.OK if path.read_text(encoding="utf-8", errors="replace") == text \
        else Status.DRIFTED
