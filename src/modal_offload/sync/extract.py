"""Safe, two-phase application of a received tar (and of deletions) to a tree.

Phase 1 streams every acceptable member into a private staging folder inside the root
(same filesystem, so the final move is an atomic rename), hashing as it writes, with its
mode and mtime set on the open file. Phase 2, only once the whole archive arrived intact,
installs members in path order, each by `os.replace`. A broken stream, a lying size cap
or a malformed archive therefore leaves the tree untouched.

Staged members keep their layout (`<staging>/t/<path>`), so that a received folder that
does not exist in the tree yet is installed by one rename of its staged copy, contents
included, when every member is placed as it comes (the default policy: the remote side of
a sync up). A first sync of 100,000 files is then a few thousand renames, not 100,000. A
member whose staged place is taken (a case-insensitive disk, a folder the archive also
sends as a file) is staged flat under `<staging>/x/` and installed alone. Symlinks are
never staged in the layout: each is created and checked at its final place. No fsync: the
guarantee is that the tree never holds a partial stream, not durability across a crash.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from .ignore import IgnoreRules
from .manifest import DIR, FILE, LINK, Entry, stat_entry
from .safety import (
    SPECIAL,
    check_link_target,
    check_name,
    existing_parent,
    make_staging,
    move,
    only_ignored,
    remove_stale_staging,
)
from .tarread import Member, TarReader

_SMALL = 64 * 1024


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


@dataclass(slots=True)
class _Staged:
    kind: str
    mode: int
    mtime_ns: int
    size: int = 0
    hash: str | None = None
    target: str | None = None
    staged: str | None = None  # a file's staged copy (a path)
    entry: Entry | None = None  # a file's entry as staged (a rename keeps all of it)
    in_tree: bool = False  # staged at its own place in the staging tree


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
                 max_bytes: int | None = None,
                 on_move: Callable[[str, str], object] | None = None) -> None:
        """`on_move(staged, rel)`: called right before a staged folder is renamed into
        the tree whole (the channel agent's watcher watches it from then: remote.py)."""
        self.root = Path(root)
        self._on_move = on_move
        self._policy = policy
        self._rules = rules
        self._replace_dirs = replace_dirs
        self._max_bytes = max_bytes
        self._real_root = ""
        self._dirs_ok: set[str] = set()
        self._implicit: list[str] = []  # folders created only to hold a member
        # The staging tree: its folders (relative), and those no member asked for.
        self._tree_dirs: set[str] = set()
        self._tree_implicit: set[str] = set()

    # ----------------------------------------------------------------- archives
    def extract(self, fileobj: IO[bytes] | object) -> ExtractResult:
        """Read a tar stream from `fileobj` (only `read1` or `read` is used) and apply it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = os.path.realpath(self.root)
        self._dirs_ok = {""}
        self._implicit = []
        self._tree_dirs = {""}
        self._tree_implicit = set()
        result = ExtractResult()
        remove_stale_staging(self.root)
        staging = make_staging(self.root)
        try:
            os.mkdir(os.path.join(staging, "t"), 0o700)
            os.mkdir(os.path.join(staging, "x"), 0o700)
            staged = self._stage(fileobj, staging, result)
            moved: set[str] = set()  # folders installed whole, contents included
            for rel in sorted(staged):
                item = staged[rel]
                try:
                    if not self._install_moved(rel, item, moved, staging, result):
                        self._install(rel, item, staging, result)
                except OSError as exc:
                    result.refused.append((rel, f"could not write: {exc.strerror or exc}"))
            self._implicit += [d for d in sorted(self._tree_implicit) if _below(d, moved)]
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
        cap = self._max_bytes
        skipped = 0  # content of refused members: read, so it counts against the cap too
        try:
            reader = TarReader(fileobj)
            for n, member in enumerate(reader):
                rel = member.name
                # Metadata (PAX records, headers) counts against the cap as content.
                result.metadata_bytes += member.metadata
                if cap is not None and (result.content_bytes + result.metadata_bytes
                                        + skipped + member.size > cap):
                    raise OverCap(f"archive exceeds the cap of {cap} bytes")
                reason = self._check_member(rel, member, staged)
                if reason is not None:
                    result.refused.append((rel, reason))
                    skipped += member.size
                    continue
                item = _Staged(FILE if member.isreg() else DIR if member.isdir() else LINK,
                               member.mode & 0o777, member.mtime * 1_000_000_000)
                if member.isreg():
                    item.size = member.size
                    result.content_bytes += member.size
                    small = member.size <= _SMALL  # in one piece: no loop per file
                    self._stage_file(rel, n, reader.content() if small else reader.chunks(),
                                     item, staged, staging)
                    item.hash = item.entry.hash if item.entry is not None else None
                elif member.isdir():
                    item.in_tree = self._stage_dir(rel, staged, staging)
                else:
                    item.target = member.linkname
                staged[rel] = item
        except tarfile.TarError as exc:
            raise tarfile.ReadError(f"malformed archive: {exc}") from None
        return staged

    def _stage_dir(self, rel: str, staged: dict[str, _Staged], staging: str,
                   member: bool = True) -> bool:
        """Make `rel` a folder of the staging tree, with what is missing above it (`member`:
        the archive sent it; otherwise it only holds one). False when its place there is
        taken: by a member that is not a folder there, or by a name the disk takes for
        another (a case-insensitive disk)."""
        if rel in self._tree_dirs:
            if member:
                self._tree_implicit.discard(rel)  # sent after what it holds
            return True
        if not member and rel in staged:
            return False
        if not self._stage_dir(rel.rpartition("/")[0], staged, staging, member=False):
            return False
        try:
            os.mkdir(os.path.join(staging, "t", rel), 0o700)
        except OSError:
            return False
        self._tree_dirs.add(rel)
        if not member:
            self._tree_implicit.add(rel)
        return True

    def _stage_file(self, rel: str, n: int, content: bytes | Iterator[bytes], item: _Staged,
                    staged: dict[str, _Staged], staging: str) -> None:
        """Write a file member to its place in the staging tree, or, when that place is
        taken, to a flat name (`x/<n>`)."""
        if self._stage_dir(rel.rpartition("/")[0], staged, staging, member=False):
            path = f"{staging}/t/{rel}"
            try:
                fd = os.open(path, _CREATE, item.mode)
            except (FileExistsError, IsADirectoryError, NotADirectoryError):
                pass
            else:
                item.staged, item.in_tree = path, True
                item.entry = _write(fd, content, item.mode, item.mtime_ns)
                return
        item.staged = os.path.join(staging, "x", str(n))
        item.entry = _write(os.open(item.staged, _CREATE, item.mode), content, item.mode,
                            item.mtime_ns)

    def _install_moved(self, rel: str, item: _Staged, moved: set[str], staging: str,
                       result: ExtractResult) -> bool:
        """Install `rel` as part of a folder moved whole, or move its folder whole: only
        under the default policy (every member placed as it comes), for a folder that is
        not in the tree yet. True when done; False: install it alone."""
        if self._policy is not _always_replace or not item.in_tree:
            return False
        if _below(rel, moved):
            result.installed[rel] = item.entry if item.entry is not None \
                else Entry(DIR, 0, 0, item.mode)
            return True
        if item.kind != DIR:
            return False
        dest = os.path.join(self.root, rel)
        if os.path.lexists(dest) or self._ensure_parent(rel) is not None:
            return False
        if self._on_move is not None:
            self._on_move(os.path.join(staging, "t", rel), rel)
        os.rename(os.path.join(staging, "t", rel), dest)
        moved.add(rel)
        self._dirs_ok.add(rel)
        result.installed[rel] = Entry(DIR, 0, 0, item.mode)
        return True

    def _check_member(self, rel: str, member: Member,
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
        src = item.staged
        if src is None:  # symlink: created now, inside the staging folder, then moved
            src = os.path.join(staging, "x", f"l{len(result.installed)}-{len(result.sidecars)}")
            os.symlink(item.target or "", src)
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
        # A file's entry is what was staged (a rename keeps mode, mtime and content).
        entry = item.entry or stat_entry(self.root, rel)
        if entry is not None:
            result.installed[rel] = entry

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


_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _write(fd: int, content: bytes | Iterator[bytes], mode: int, mtime_ns: int) -> Entry:
    """Write `content` to the new file `fd` (closed here), hashing it, and give it its mode
    and mtime while it is open: its entry then comes from the same descriptor, with no
    further lookup by path. The file was created with `mode` (in a staging folder only we
    can enter); a umask that took bits away is undone here."""
    h = hashlib.blake2b(digest_size=16)
    try:
        for chunk in (content,) if isinstance(content, bytes) else content:
            h.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        os.utime(fd, ns=(mtime_ns, mtime_ns))
        st = os.fstat(fd)
        if st.st_mode & 0o777 != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return Entry.hashed_file(st.st_size, st.st_mtime_ns, mode, h.digest())


def _below(rel: str, folders: set[str]) -> bool:
    """Whether a folder above `rel` is in `folders`."""
    cut = rel.rfind("/") if folders else -1
    while cut > 0:
        if rel[:cut] in folders:
            return True
        cut = rel.rfind("/", 0, cut)
    return False
