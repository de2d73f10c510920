"""One installable piece of the agent integration, and small helpers the pieces share."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..fileio import atomic_write_text
from .blocks import Status


@dataclass(frozen=True)
class Item:
    part: str  # "runner", "policy" or "hooks"
    name: str  # what `agents check` prints, e.g. "claude hook .claude/settings.json"
    install: Callable[[], bool]  # True when something changed
    check: Callable[[], tuple[Status, str]]
    uninstall: Callable[[], bool]


def _created_record(path: Path) -> Path:
    key = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:16]
    return paths.backups_dir() / "created" / f"{path.name}.{key}"


def create_if_absent(path: Path, text: str) -> bool:
    """Write a user-editable file only when absent, remembering that we created it."""
    if path.exists() or path.is_symlink():
        return False
    atomic_write_text(path, text)
    atomic_write_text(_created_record(path), text)
    return True


def remove_if_ours_unchanged(path: Path) -> bool:
    """Remove a file we created, unless its owner has edited it since."""
    record = _created_record(path)
    try:
        ours = record.read_text()
    except FileNotFoundError:
        return False
    record.unlink()
    try:
        if path.read_text() != ours:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    path.unlink()
    return True


def prune_dirs(folders: Iterable[Path], stop: Path) -> None:
    """Remove now-empty folders we may have made (deepest first), never `stop` itself."""
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent


def ensure_symlink(link: Path, target: str) -> bool:
    """Our symlink at `link`; a foreign file there is kept as `<name>.legacy`."""
    if link.is_symlink() and os.readlink(link) == target:
        return False
    if link.is_symlink() or link.exists():
        link.replace(link.with_name(link.name + ".legacy"))
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return True


def check_symlink(link: Path, target: str) -> tuple[Status, str]:
    if link.is_symlink() and os.readlink(link) == target:
        return Status.OK, f"{link} -> {target}"
    if link.is_symlink() or link.exists():
        return Status.FOREIGN, f"{link} is not our link to {target}"
    return Status.MISSING, str(link)


def remove_symlink(link: Path, target: str) -> bool:
    if not (link.is_symlink() and os.readlink(link) == target):
        return False
    link.unlink()
    legacy = link.with_name(link.name + ".legacy")
    if legacy.exists() or legacy.is_symlink():
        legacy.replace(link)
    return True
