"""Safe, two-phase application of a received tar (and of deletions) to a tree.

Phase 1 streams every acceptable member into a private staging folder inside the root
(same filesystem, so the final move is an atomic rename), hashing as it writes. Phase 2,
only once the whole archive arrived intact, installs members in path order, each by
`os.replace`. A broken stream, a lying size cap or a malformed archive therefore leaves
the tree untouched.

Refused, never written: absolute names, `..` or empty components, members whose folder
on disk is a symlink or not a folder, symlinks that point (lexically or, at install time,
physically) outside the root, hard links, devices, fifos and other special members,
duplicates, and names the receiver's ignore rules exclude.

Not defended against: another local process racing us inside the tree while we apply
(checks and renames are path-based, not descriptor-based).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from .ignore import IgnoreRules
from .manifest import DIR, FILE, LINK, Entry, stat_entry
from .safety import (
    SPECIAL,
    BoundedTarInfo,
    check_link_target,
    check_name,
    existing_parent,
    make_staging,
    move,
    only_ignored,
    remove_stale_staging,
)

_CHUNK = 1 << 20


class Placement(enum.Enum):
    REPLACE = "replace"  # install at the member's own path
    SKIP = "skip"  # leave the tree as it is (already identical, or not wanted)
    SIDECAR = "sidecar"  # keep what is there; save the incoming copy beside it
    REFUSE = "refuse"  # write nothing, report it as refused


class Decision(NamedTuple):
    """A placement with the reason reported for it (a policy may return either)."""

    placement: Placement
    reason: str


class OverCap(Exception):
    """The archive carried more content than the receiver agreed to take."""


@dataclass
class ExtractResult:
    installed: dict[str, Entry] = field(default_factory=dict)  # path -> entry on disk now
    sidecars: list[tuple[str, str | None, str]] = field(default_factory=list)  # path, copy, why
    skipped: list[str] = field(default_factory=list)  # the policy said SKIP
    refused: list[tuple[str, str]] = field(default_factory=list)  # path, reason
    content_bytes: int = 0
    metadata_bytes: int = 0  # tar headers and PAX records


@dataclass
class DeleteResult:
    deleted: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # path, why
    refused: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Staged:
    kind: str
    mode: int
    mtime_ns: int
    size: int = 0
    hash: str | None = None
    target: str | None = None
    staged: str | None = None  # name inside the staging folder


Policy = Callable[[str, Entry], "Placement | Decision"]
Veto = Callable[[str], "str | None"]  # why `path` may not be deleted, or None


def _always_replace(relpath: str, incoming: Entry) -> Placement:
    return Placement.REPLACE


class SafeExtractor:
    """Applies archives and deletions under `root`.

    `policy(path, incoming_entry)` decides each member once its content is staged (the
    entry carries the received hash). `rules`, when given, refuses ignored paths.
    `replace_dirs=True` lets a member replace a non-empty folder (the remote side, where
    the client wins); otherwise only an empty folder is replaced and the incoming copy
    goes beside it.
    """

    def __init__(self, root: Path, *, policy: Policy = _always_replace,
                 rules: IgnoreRules | None = None, replace_dirs: bool = False,
                 max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self._policy = policy
        self._rules = rules
        self._replace_dirs = replace_dirs
        self._max_bytes = max_bytes
        self._real_root = ""
        self._dirs_ok: set[str] = set()
        self._implicit: list[str] = []  # folders created only to hold a member

    # ----------------------------------------------------------------- archives
    def extract(self, fileobj: IO[bytes] | object) -> ExtractResult:
        """Read a tar stream from `fileobj` (only `read` is used) and apply it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = os.path.realpath(self.root)
        self._dirs_ok = {""}
        self._implicit = []
        result = ExtractResult()
        remove_stale_staging(self.root)
        staging = make_staging(self.root)
        try:
            staged = self._stage(fileobj, staging, result)
            for rel in sorted(staged):
                try:
                    self._install(rel, staged[rel], staging, result)
                except OSError as exc:
                    result.refused.append((rel, f"could not write: {exc.strerror or exc}"))
            self._fix_dir_modes(staged, result)
            for rel in self._implicit:
                entry = stat_entry(self.root, rel)
                if entry is not None and rel not in result.installed:
                    result.installed[rel] = entry
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return result

    def _stage(self, fileobj: object, staging: str, result: ExtractResult) -> dict[str, _Staged]:
        staged: dict[str, _Staged] = {}
        try:
            with tarfile.open(fileobj=fileobj, mode="r|",  # type: ignore[call-overload]
                              encoding="utf-8", errors="surrogateescape",
                              tarinfo=BoundedTarInfo) as tar:
                for n, member in enumerate(tar):
                    rel = member.name
                    # Metadata (PAX/GNU long-name records) counts against the cap as content.
                    result.metadata_bytes += member.offset_data - member.offset
                    if (self._max_bytes is not None
                            and result.content_bytes + result.metadata_bytes > self._max_bytes):
                        raise OverCap(f"archive exceeds the cap of {self._max_bytes} bytes")
                    reason = self._check_member(rel, member, staged)
                    if reason is not None:
                        result.refused.append((rel, reason))
                        continue
                    item = _Staged(FILE if member.isreg() else DIR if member.isdir() else LINK,
                                   member.mode & 0o777, int(member.mtime) * 1_000_000_000)
                    if member.isreg():
                        item.staged = str(n)
                        item.size = member.size
                        result.content_bytes += member.size
                        if (self._max_bytes is not None and
                                result.content_bytes + result.metadata_bytes > self._max_bytes):
                            raise OverCap(f"archive exceeds the cap of {self._max_bytes} bytes")
                        item.hash = _write(tar.extractfile(member), os.path.join(staging, str(n)))
                    elif member.issym():
                        item.target = member.linkname
                    staged[rel] = item
        except tarfile.TarError as exc:
            raise tarfile.ReadError(f"malformed archive: {exc}") from None
        return staged

    def _check_member(self, rel: str, member: tarfile.TarInfo,
                      staged: dict[str, _Staged]) -> str | None:
        reason = check_name(rel)
        if reason:
            return reason
        if not (member.isreg() or member.isdir() or member.issym()):
            return SPECIAL.get(member.type, "special member") + " refused"
        if rel in staged:
            return "duplicate member"
        if member.issym():
            reason = check_link_target(rel, member.linkname)
            if reason:
                return reason
        if self._rules is not None and self._rules.ignored(rel, member.isdir()):
            return "ignored by the receiver's rules"
        return None

    def _install(self, rel: str, item: _Staged, staging: str, result: ExtractResult) -> None:
        reason = self._ensure_parent(rel)
        if reason is None and item.kind == LINK:
            reason = self._physical_link_check(rel, item.target or "")
        if reason is not None:
            result.refused.append((rel, reason))
            return
        incoming = Entry(item.kind, item.size, item.mtime_ns, item.mode, item.target, item.hash)
        decided = self._policy(rel, incoming)
        placement, why = decided if isinstance(decided, Decision) else (decided, "")
        if placement is Placement.REFUSE:
            result.refused.append((rel, why or "refused by the receiver"))
            return
        if placement is Placement.SKIP:
            result.skipped.append(rel)
            return
        dest = os.path.join(self.root, rel)
        if item.kind == DIR:
            if placement is Placement.SIDECAR:
                result.sidecars.append((rel, None, why or "a folder arrived where a local "
                                                          "file changed"))
                return
            self._make_dir(dest, rel)
            result.installed[rel] = incoming._replace(size=0, mtime_ns=0)
            return
        src = os.path.join(staging, item.staged) if item.staged else None
        if src is None:  # symlink: created now, inside the staging folder, then moved
            src = os.path.join(staging, f"l{len(result.installed)}-{len(result.sidecars)}")
            os.symlink(item.target or "", src)
        else:
            os.chmod(src, item.mode)
            os.utime(src, ns=(item.mtime_ns, item.mtime_ns))
        if placement is Placement.REPLACE and not self._clear_dir(dest):
            placement = Placement.SIDECAR
            why = "a local folder with contents is in the way"
        else:
            why = why or "changed locally since the last sync"
        if placement is Placement.SIDECAR:
            copy = self._save_beside(rel, src, incoming)
            result.sidecars.append((rel, copy, why))
            return
        move(src, dest)
        entry = stat_entry(self.root, rel)
        if entry is not None:
            # The content is what we hashed while writing: no need to read it again.
            result.installed[rel] = entry._replace(hash=item.hash) if item.kind == FILE else entry

    def _ensure_parent(self, rel: str) -> str | None:
        """Make sure every folder above `rel` is a real folder (creating missing ones)."""
        parts = rel.split("/")[:-1]
        prefix = ""
        for part in parts:
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix in self._dirs_ok:
                continue
            path = os.path.join(self.root, prefix)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                self._dirs_ok.add(prefix)
                self._implicit.append(prefix)
                continue
            if stat.S_ISLNK(st.st_mode):
                return f"path goes through the symlink {prefix}"
            if not stat.S_ISDIR(st.st_mode):
                return f"{prefix} is not a folder"
            self._dirs_ok.add(prefix)
        return None

    def _physical_link_check(self, rel: str, target: str) -> str | None:
        where = os.path.realpath(os.path.join(self.root, os.path.dirname(rel), target))
        if where != self._real_root and not where.startswith(self._real_root + os.sep):
            return "symlink resolves outside the workspace"
        return None

    def _make_dir(self, dest: str, rel: str) -> None:
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            os.mkdir(dest, 0o700)  # final mode is set after its contents are written
        else:
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(dest)  # a file or symlink the policy agreed to replace
                self._dirs_ok = {""}
                os.mkdir(dest, 0o700)
            else:
                os.chmod(dest, st.st_mode | 0o700)
        self._dirs_ok.add(rel)

    def _clear_dir(self, dest: str) -> bool:
        """Make room for a non-folder at `dest`: False when a non-empty folder must stay."""
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            return True
        if not stat.S_ISDIR(st.st_mode):
            return True
        try:
            if self._replace_dirs:
                shutil.rmtree(dest)
            else:
                os.rmdir(dest)
        except OSError:
            return False
        self._dirs_ok = {""}  # cached "is a folder" facts below dest no longer hold
        return True

    def _save_beside(self, rel: str, src: str, incoming: Entry) -> str:
        """Move `src` to `<name>.remote-<hash8>` beside `rel`, never over anything.

        The name is reserved with O_CREAT|O_EXCL first (atomic: fails if it exists), then
        our own placeholder is replaced. An existing copy with the same content is reused.
        """
        digest = incoming.hash or hashlib.blake2b((incoming.target or "").encode(
            "utf-8", "surrogateescape"), digest_size=16).hexdigest()
        head, _, name = rel.rpartition("/")
        stem = f"{name[:200]}.remote-{digest[:8]}"
        for n in range(1, 1000):
            cand = stem if n == 1 else f"{stem}-{n}"
            cand_rel = f"{head}/{cand}" if head else cand
            existing = stat_entry(self.root, cand_rel)
            if existing is not None and existing.type == incoming.type and (
                    existing.hash == incoming.hash and existing.target == incoming.target):
                return cand_rel
            try:
                fd = os.open(os.path.join(self.root, cand_rel),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            move(src, os.path.join(self.root, cand_rel))
            return cand_rel
        raise OSError(errno.EEXIST, f"no free name for a copy of {rel}")

    def _fix_dir_modes(self, staged: dict[str, _Staged], result: ExtractResult) -> None:
        # Deepest first, after all contents: a read-only folder must not block its files.
        for rel in sorted((r for r in staged if r in result.installed
                           and staged[r].kind == DIR), reverse=True):
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(self.root, rel), staged[rel].mode)

    # ---------------------------------------------------------------- deletions
    def delete(self, paths: Iterable[str], veto: Veto | None = None,
               *, rules: IgnoreRules | None = None) -> DeleteResult:
        """Remove `paths` (give them deepest first). `veto(path)` says why one must stay.

        A folder is removed only once empty; with `rules` (the remote side, where the
        client's tree wins) also when nothing is left in it but ignored files. Without
        them (the laptop) a folder holding anything the sender never listed stays: the
        remote may only delete what it was shown (issue 13).
        """
        self._dirs_ok = {""}
        out = DeleteResult()
        for rel in paths:
            reason = check_name(rel)
            if reason is None and self._rules is not None and self._rules.ignored(rel, False):
                reason = "ignored by the receiver's rules"
            if reason is None:
                reason = existing_parent(self.root, rel)
            if reason == "":
                continue  # a folder above it is already gone
            if reason is not None:
                out.refused.append((rel, reason))
                continue
            dest = os.path.join(self.root, rel)
            try:
                st = os.lstat(dest)
            except FileNotFoundError:
                continue
            why = veto(rel) if veto is not None else None
            if why is not None:
                out.kept.append((rel, why))
                continue
            try:
                if stat.S_ISDIR(st.st_mode):
                    if not self._remove_dir(rel, rules):
                        out.kept.append((rel, "the folder holds files the remote never had"))
                        continue
                else:
                    os.unlink(dest)
            except OSError as exc:
                out.kept.append((rel, f"could not delete: {exc.strerror or exc}"))
                continue
            out.deleted.append(rel)
        return out

    def _remove_dir(self, rel: str, rules: IgnoreRules | None) -> bool:
        dest = os.path.join(self.root, rel)
        try:
            os.rmdir(dest)
            return True
        except OSError:
            pass
        if rules is None or not only_ignored(self.root, rel, rules):
            return False
        shutil.rmtree(dest)
        return True


def _write(src: IO[bytes] | None, path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    with os.fdopen(fd, "wb") as out:
        while src is not None and (chunk := src.read(_CHUNK)):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


