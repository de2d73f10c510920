"""Writing a user's own file (rc files, agent settings) without changing what kind of file
it is (issue 13).

- A symlink stays a symlink: we edit its final target. Dotfile managers (stow, chezmoi, yadm,
  a dotfiles repository) link ~/.zshrc or settings.json to a file they track; replacing the
  link with a file would silently fork the user's configuration. A dangling link is refused.
- A read-only file is refused, even for root (which could write it anyway): no write bit for
  its owner means the user froze it on purpose. Callers check every file before writing any,
  so a refusal leaves nothing half-installed.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BadInput
from ..fileio import atomic_write_bytes


def target(path: Path) -> Path:
    """The file to read and write for `path`: itself, or a symlink's final target."""
    if not path.is_symlink():
        return path
    real = path.resolve()
    if not real.exists():
        raise BadInput(f"{path} is a symlink to {real}, which does not exist",
                       "fix or remove the link, then run this again")
    return real


def check_writable(path: Path) -> None:
    """Raise BadInput unless we may change `path` (or create it)."""
    real = target(path)
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        return
    if not mode & 0o200 or not os.access(real, os.W_OK):
        shown = path if real == path else f"{path} (-> {real})"
        raise BadInput(f"{shown} is read-only; nothing was changed",
                       "make it writable (chmod u+w) and run this again, or leave it as it is")


def write(path: Path, data: bytes) -> None:
    check_writable(path)
    atomic_write_bytes(target(path), data)


def remove(path: Path, empty: bytes = b"") -> None:
    """Undo creating `path`: delete it; a symlink (the user linked it since) is kept and
    its target gets `empty` instead, so neither their link nor their target disappears."""
    if path.is_symlink():
        write(path, empty)
        return
    check_writable(path)
    path.unlink()
