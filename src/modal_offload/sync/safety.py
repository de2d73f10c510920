"""Path-safety rules for writing received paths under a root (used by extract.py)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from pathlib import Path

from .ignore import TMP_SUFFIX, IgnoreRules
from .staging import make_staging as make_staging  # extract.py and tests import them here
from .staging import remove_stale_staging as remove_stale_staging

# One PAX record or GNU long name/link: a path and a link target fit many times over.
MAX_MEMBER_METADATA = 64 * 1024


def check_name(name: str) -> str | None:
    """Why `name` may not be written under a root, or None when it is a clean relative path."""
    if not name:
        return "empty name"
    if "\0" in name:
        return "NUL in name"
    if name.startswith("/"):
        return "absolute path"
    framed = f"/{name}/"  # every component between slashes: one scan per kind
    if "//" in framed or "/./" in framed or "/../" in framed:
        return "'..', '.' or empty path component"
    return None


def check_link_target(relpath: str, target: str) -> str | None:
    """Lexical check: relative, `..` only as a leading run, never above the root.

    Together with every member's folder being a real folder, this means resolving the
    link only ever goes up from a real folder and then down, so it cannot escape through
    another link of the tree (`a -> .` plus `b -> a/..` would, and is refused).
    """
    if not target or "\0" in target:
        return "empty or NUL symlink target"
    if target.startswith("/"):
        return "symlink to an absolute path"
    parts = [p for p in target.split("/") if p not in ("", ".")]
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    if ".." in parts[ups:]:
        return "symlink target with '..' after a name"
    if ups > relpath.count("/"):
        return "symlink points outside the workspace"
    return None


SPECIAL = {tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "character device",
            tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo",
            tarfile.CONTTYPE: "contiguous file"}


def existing_parent(root: Path, rel: str) -> str | None:
    """None if every folder above `rel` is a real folder; '' if one is missing (so `rel`
    cannot exist either); otherwise why `rel` must not be touched."""
    prefix = ""
    for part in rel.split("/")[:-1]:
        prefix = f"{prefix}/{part}" if prefix else part
        try:
            st = os.lstat(os.path.join(root, prefix))
        except FileNotFoundError:
            return ""
        if stat.S_ISLNK(st.st_mode):
            return f"path goes through the symlink {prefix}"
        if not stat.S_ISDIR(st.st_mode):
            return ""
    return None


def only_ignored(root: Path, reldir: str, rules: IgnoreRules) -> bool:
    """True when everything under `reldir` is ignored (caches, bytecode): safe to drop."""
    try:
        with os.scandir(os.path.join(root, reldir)) as it:
            listing = list(it)
    except OSError:
        return False
    dir_rules = rules.for_dir(reldir)
    for de in listing:
        is_dir = de.is_dir(follow_symlinks=False)
        if dir_rules.ignored(de.name, is_dir):
            continue
        if not is_dir or not only_ignored(root, f"{reldir}/{de.name}", rules):
            return False
    return True


def move(src: str, dest: str) -> None:
    """Atomic rename; across a mount point inside the tree, copy beside `dest` first."""
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = f"{dest}.{os.getpid()}{TMP_SUFFIX}"
        if os.path.islink(src):
            os.symlink(os.readlink(src), tmp)
        else:
            shutil.copy2(src, tmp)
        os.replace(tmp, dest)
        os.unlink(src)


class MetadataRefused(tarfile.TarError):
    """A member's metadata is larger than any we send, or of a kind we never send."""


