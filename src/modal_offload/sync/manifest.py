"""What a tree holds: one entry per path, and the delta between two such snapshots.

A file's content is identified by a blake2b hash, computed only when its size or mtime_ns
differ from the previous snapshot (or there is none). So a touched-but-identical file is
re-hashed once and never sent, while a real edit is caught even when the size is unchanged.

Known limit (the same one git has): a file rewritten with the same size *and* the same
mtime_ns as recorded is not re-read. To narrow it, entries whose mtime is within
`RACY_WINDOW_NS` of the snapshot time are "racy" (git's term) and are always re-hashed by
the next scan, so an edit landing in the same clock tick as the scan is still seen.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .ignore import IgnoreRules

VERSION = 1
RACY_WINDOW_NS = 2_000_000_000  # coarse kernel clocks and 2 s filesystems (FAT) stay safe
_READ_CHUNK = 1 << 20
FILE, DIR, LINK = "f", "d", "l"
_S_IFMT, _S_IFDIR, _S_IFREG = 0o170000, stat.S_IFDIR, stat.S_IFREG


# An Entry's bytes: flags (kind, and how the hash and the target are held), mode, size,
# mtime_ns, then the hash (16 raw bytes, or a length and its text), then the target.
_HEAD = struct.Struct("<BHqq")
_HEAD_SIZE = _HEAD.size
_TEXT_LEN = struct.Struct("<I")
_KIND_OF = {FILE: 0, DIR: 1, LINK: 2}
_KINDS = (FILE, DIR, LINK, FILE)  # by flags & 3 (3 is never written)
_HASH_HEX, _HASH_TEXT, _TARGET, _TARGET_PASS = 4, 8, 16, 32
_HEX_SLICE = slice(_HEAD_SIZE, _HEAD_SIZE + 16)


def _hex16(digest: str) -> bytes | None:
    """The 16 bytes a canonical (lowercase, 32-digit) hex hash stands for, else None."""
    if len(digest) != 32:
        return None
    try:
        raw = bytes.fromhex(digest)
    except ValueError:
        return None
    return raw if raw.hex() == digest else None


_FIELD_NAMES = ("type", "size", "mtime_ns", "mode", "target", "hash")
_FIELD_INDEX = {name: i for i, name in enumerate(_FIELD_NAMES)}


class Entry(bytes):
    """One path. Directories carry only their mode; symlinks their target.

    Immutable and read like the named tuple it was (fields, `_replace`, iteration over
    the six fields, equality of all of them), but held as one packed bytes object: at
    100k files the host keeps ~200 bytes an entry instead of ~330 for a tuple, its hex
    hash string and its mtime int (issue 21, host memory). Malformed fields (an unknown
    type, a mode or size out of range, a non-str hash) raise TypeError."""

    __slots__ = ()
    _fields = _FIELD_NAMES

    def __new__(cls, type: str, size: int, mtime_ns: int, mode: int,
                target: str | None = None, hash: str | None = None) -> Entry:
        try:
            flags = _KIND_OF[type]
            tail = b""
            if hash is not None:
                raw = _hex16(hash)
                if raw is not None:  # canonical: equal fields make equal bytes
                    flags |= _HASH_HEX
                    tail = raw
                else:
                    text = hash.encode("utf-8", "surrogatepass")
                    flags |= _HASH_TEXT
                    tail = _TEXT_LEN.pack(len(text)) + text
            if target is not None:
                try:
                    tail += target.encode("utf-8", "surrogateescape")
                    flags |= _TARGET
                except UnicodeEncodeError:
                    tail += target.encode("utf-8", "surrogatepass")
                    flags |= _TARGET | _TARGET_PASS
            return bytes.__new__(cls, _HEAD.pack(flags, mode, size, mtime_ns) + tail)
        except (KeyError, TypeError, AttributeError, struct.error) as exc:
            raise TypeError(f"bad entry field: {exc}") from None

    @property
    def type(self) -> str:
        return _KINDS[bytes.__getitem__(self, 0) & 3]

    @property
    def mode(self) -> int:
        mode: int = _HEAD.unpack_from(self)[1]
        return mode

    @property
    def size(self) -> int:
        size: int = _HEAD.unpack_from(self)[2]
        return size

    @property
    def mtime_ns(self) -> int:
        mtime_ns: int = _HEAD.unpack_from(self)[3]
        return mtime_ns

    @property
    def hash(self) -> str | None:
        return self._tail()[0]

    @property
    def target(self) -> str | None:
        return self._tail()[1]

    def stat_key(self) -> tuple[int, int, int, int]:
        """(flags, mode, size, mtime_ns) in one read: what a scan compares to a stat."""
        key: tuple[int, int, int, int] = _HEAD.unpack_from(self)
        return key

    def _tail(self) -> tuple[str | None, str | None]:
        flags = bytes.__getitem__(self, 0)
        at = _HEAD_SIZE
        digest: str | None = None
        if flags & _HASH_HEX:
            digest, at = bytes.__getitem__(self, slice(at, at + 16)).hex(), at + 16
        elif flags & _HASH_TEXT:
            (n,) = _TEXT_LEN.unpack_from(self, at)
            at += _TEXT_LEN.size
            digest = bytes.__getitem__(self, slice(at, at + n)).decode("utf-8", "surrogatepass")
            at += n
        target: str | None = None
        if flags & _TARGET:
            target = bytes.__getitem__(self, slice(at, None)).decode(
                "utf-8", "surrogatepass" if flags & _TARGET_PASS else "surrogateescape")
        return digest, target

    def fields(self) -> tuple[str, int, int, int, str | None, str | None]:
        """The six fields, in the order the constructor and the JSON list take them."""
        flags, mode, size, mtime_ns = _HEAD.unpack_from(self)
        if flags & ~3 == _HASH_HEX:  # most entries: a file and its hash
            return (_KINDS[flags & 3], size, mtime_ns, mode, None,
                    bytes.__getitem__(self, _HEX_SLICE).hex())
        digest, target = self._tail()
        return _KINDS[flags & 3], size, mtime_ns, mode, target, digest

    @classmethod
    def hashed_file(cls, size: int, mtime_ns: int, mode: int, digest: bytes) -> Entry:
        """A file's entry from its hasher's raw digest(): the bytes are packed as they
        are, with no hex text made and parsed again (a first sync makes 100k of these)."""
        if len(digest) != 16:
            return cls(FILE, size, mtime_ns, mode, None, digest.hex())
        try:
            return bytes.__new__(cls, _HEAD.pack(_HASH_HEX, mode, size, mtime_ns) + digest)
        except struct.error as exc:
            raise TypeError(f"bad entry field: {exc}") from None

    def with_digest(self, digest: bytes) -> Entry:
        """`with_hash` from a hasher's raw digest()."""
        flags, mode, size, mtime_ns = _HEAD.unpack_from(self)
        if flags == _KIND_OF[FILE]:  # a file with no hash yet: the packer's case
            return Entry.hashed_file(size, mtime_ns, mode, digest)
        return self.with_hash(digest.hex())

    def with_hash(self, digest: str) -> Entry:
        """This entry with its content hash set (what a packer learns as it reads)."""
        flags, mode, size, mtime_ns = _HEAD.unpack_from(self)
        target = self._tail()[1] if flags & _TARGET else None
        return Entry(_KINDS[flags & 3], size, mtime_ns, mode, target, digest)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fields())

    def __len__(self) -> int:
        return len(self._fields)

    def __getitem__(self, index: Any) -> Any:
        return self.fields()[index]

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self.fields(), strict=True))

    def _replace(self, **changes: Any) -> Entry:
        fields: list[Any] = list(self.fields())
        for name, value in changes.items():
            if name not in _FIELD_INDEX:
                raise ValueError(f"Got unexpected field names: {[name]!r}")
            fields[_FIELD_INDEX[name]] = value
        return Entry(*fields)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Entry, self.fields())

    def __repr__(self) -> str:
        return "Entry(" + ", ".join(f"{k}={v!r}" for k, v in self._asdict().items()) + ")"


def entry_from_list(raw: Any) -> Entry:
    """An Entry from its JSON list (TypeError when malformed)."""
    if not isinstance(raw, list) or not 4 <= len(raw) <= 6:
        raise TypeError(f"bad entry: {raw!r:.80}")
    return Entry(*raw)


def same_content(a: Entry, b: Entry) -> bool:
    """Equal for sync purposes: what a copy would hold, mtimes aside."""
    if a.type != b.type:
        return False
    if a.type == FILE:
        return a.mode == b.mode and a.size == b.size and a.hash == b.hash
    if a.type == LINK:
        return a.target == b.target
    return a.mode == b.mode


def hash_file(path: str | Path) -> str:
    import hashlib  # only when a file changed: not loaded by a scan that finds none (#17)

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Manifest:
    """A snapshot: POSIX relative path -> Entry, and when the scan started.

    As a client's baseline (what the remote holds) it also knows where the remote's copy
    differs from `entries` (issue 13): `withheld` paths were refused by the remote when
    sent (it holds no copy, so it may not delete or replace ours), and `resend` paths hold
    a remote version we refused to apply (a protected path), sent again by the next sync up.
    """

    entries: dict[str, Entry] = field(default_factory=dict)
    scanned_at_ns: int = 0
    withheld: set[str] = field(default_factory=set)
    resend: set[str] = field(default_factory=set)

    def copy(self) -> Manifest:
        """A copy whose mapping and sets can be changed without touching this one."""
        return Manifest(dict(self.entries), self.scanned_at_ns, set(self.withheld),
                        set(self.resend))

    def racy_after_ns(self) -> int:
        """Entries with mtime_ns >= this may have changed within the scan's tick."""
        return self.scanned_at_ns - RACY_WINDOW_NS

    def to_dict(self) -> dict[str, Any]:
        out = {"version": VERSION, "scanned_at_ns": self.scanned_at_ns,
               "entries": {p: list(e.fields()) for p, e in self.entries.items()}}
        out.update(self._sets())
        return out

    def _sets(self) -> dict[str, list[str]]:
        out = {}
        if self.withheld:
            out["withheld"] = sorted(self.withheld)
        if self.resend:
            out["resend"] = sorted(self.resend)
        return out

    def to_json(self) -> str:
        return "".join(self.json_chunks())

    def json_chunks(self, extra: dict[str, Any] | None = None,
                    per_chunk: int = 2000) -> Iterator[str]:
        """`to_dict()` (plus `extra` keys) as JSON, a few thousand entries at a time: a
        100k-entry manifest is written without holding its whole text (or a list per
        entry) in memory at once, which the host's heap would keep (issue 21)."""
        head = {"version": VERSION, "scanned_at_ns": self.scanned_at_ns, **self._sets(),
                **(extra or {})}
        yield json.dumps(head, separators=(",", ":"))[:-1] + ',"entries":{'
        items = iter(self.entries.items())
        first = True
        while chunk := dict(itertools.islice(items, per_chunk)):
            text = json.dumps({p: e.fields() for p, e in chunk.items()}, separators=(",", ":"))
            yield ("" if first else ",") + text[1:-1]
            first = False
        yield "}}"

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Raises ValueError on anything but a well-formed snapshot of this version."""
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"not a manifest of version {VERSION}")
        raw = data.get("entries")
        if not isinstance(raw, dict):
            raise ValueError("manifest without entries")
        try:
            entries = {str(p): entry_from_list(v) for p, v in raw.items()}
        except TypeError as exc:
            raise ValueError(f"bad manifest entry: {exc}") from None
        sets = []
        for key in ("withheld", "resend"):
            raw_set = data.get(key, [])
            if not isinstance(raw_set, list):
                raise ValueError(f"bad manifest {key}")
            sets.append({str(p) for p in raw_set})
        return cls(entries, int(data.get("scanned_at_ns", 0)), *sets)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        return cls.from_dict(json.loads(text))


class TooManyEntries(Exception):
    """A scan passed its `max_entries`: stopped there, before the tree filled memory."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit:,} paths")
        self.limit = limit


class ScanStats(NamedTuple):
    entries: int
    hashed: int  # files whose content had to be read
    unreadable: int  # skipped: vanished or permission denied while reading
    reused: int  # entries taken unchanged (the same object) from the previous snapshot

    def unchanged_from(self, previous: Manifest | None) -> bool:
        """True when the scan is entry-for-entry the previous snapshot: nothing to diff."""
        return (previous is not None and self.reused == self.entries
                and self.entries == len(previous.entries))


def _type_of(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return LINK
    return None  # fifos, sockets, devices never travel


def entry_from_stat(path: str, st: os.stat_result, prev: Entry | None,
                    racy_after_ns: int) -> Entry | None:
    """Entry for `path` given its lstat, reusing `prev`'s hash/target when size and mtime
    match and `prev` is not racy. None for types that never travel or vanished files."""
    kind = _type_of(st.st_mode)
    if kind is None:
        return None
    mode = st.st_mode & 0o777
    if kind == DIR:
        if prev is not None and prev.type == DIR and prev.mode == mode:
            return prev
        return Entry(DIR, 0, 0, mode)
    size, mtime = st.st_size, st.st_mtime_ns
    if (prev is not None and prev.type == kind and prev.size == size
            and prev.mtime_ns == mtime and mtime < racy_after_ns):
        return prev if prev.mode == mode else prev._replace(mode=mode)
    try:
        if kind == LINK:
            return Entry(LINK, size, mtime, mode, target=os.readlink(path))
        return Entry(FILE, size, mtime, mode, hash=hash_file(path))
    except OSError:
        return None


def stat_entry(root: Path, relpath: str, prev: Entry | None = None,
               racy_after_ns: int = 0) -> Entry | None:
    """Current entry of one path (no ignore rules applied); None when absent."""
    path = os.path.join(root, relpath)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return entry_from_stat(path, st, prev, racy_after_ns)


def scan(root: Path, rules: IgnoreRules, previous: Manifest | None = None) -> Manifest:
    """Walk `root` (os.scandir, no symlink following, ignored folders not entered)."""
    manifest, _ = scan_with_stats(root, rules, previous)
    return manifest


def scan_with_stats(root: Path, rules: IgnoreRules, previous: Manifest | None = None,
                    start: str = "", max_entries: int | None = None, *,
                    hash_new: bool = True) -> tuple[Manifest, ScanStats]:
    """`start`: walk only below this relative folder (rescan of one subtree).
    `max_entries`: raise TooManyEntries once more paths than this are kept (checked per
    folder, and per entry while a folder is listed, so a huge tree is never held whole).

    `hash_new=False`: a file `previous` does not list gets no hash here (it is sent
    whatever its content); `tarstream.pack` hashes it from the bytes it sends, so a first
    sync reads each file once. Only for a caller that packs every such entry next."""
    walk = Walk(root, rules, previous, start, max_entries, hash_new=hash_new)
    for _ in walk:
        pass
    return walk.manifest, walk.stats


class Walk:
    """A scan one folder at a time: iterating yields, per folder listed, the paths it
    added to `manifest` (in that order; a folder always before what it holds), so that a
    first sync packs while it walks (issue 21: the walk no longer precedes the stream).
    `stats` is complete once the iteration ended. Arguments as `scan_with_stats`."""

    def __init__(self, root: Path, rules: IgnoreRules, previous: Manifest | None = None,
                 start: str = "", max_entries: int | None = None, *,
                 hash_new: bool = True) -> None:
        self.root, self.rules, self.previous = root, rules, previous
        self.start, self.max_entries, self.hash_new = start, max_entries, hash_new
        self.manifest = Manifest({}, time.time_ns())
        self.stats = ScanStats(0, 0, 0, 0)

    def paths(self) -> Iterator[str]:
        """Every path added, one at a time (what `tarstream.pack` takes)."""
        for batch in self:
            yield from batch

    def __iter__(self) -> Iterator[list[str]]:
        limit = self.max_entries if self.max_entries is not None else -1
        previous, hash_new = self.previous, self.hash_new
        prev = previous.entries if previous is not None else {}
        racy_after = previous.racy_after_ns() if previous is not None else 0
        out = self.manifest.entries
        hashed = unreadable = reused = 0
        base = os.fspath(self.root)
        stack = [self.start]
        for_dir = self.rules.for_dir
        while stack:
            reldir = stack.pop()
            added: list[str] = []
            try:
                with os.scandir(os.path.join(base, reldir) if reldir else base) as it:
                    if limit < 0:
                        listing = list(it)
                    else:
                        listing = []
                        for de in it:
                            listing.append(de)
                            if len(listing) > limit:
                                raise TooManyEntries(limit)
            except FileNotFoundError:  # vanished: its contents are gone
                continue
            except OSError:
                # Unreadable (chmod 000), not gone: what it held stays as last seen, so the
                # other side never takes "cannot read" for "deleted" (issue 13).
                kept = _keep_below(reldir, prev, out)
                unreadable += len(kept)
                self.stats = ScanStats(len(out), hashed, unreadable, reused)
                yield kept
                continue
            dir_rules = for_dir(reldir, [de.name for de in listing])
            ignored = dir_rules.ignored
            prefix = f"{reldir}/" if reldir else ""
            for de in listing:
                name = de.name
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError:
                    continue
                mode = st.st_mode
                is_dir = (mode & _S_IFMT) == _S_IFDIR
                if ignored(name, is_dir):
                    continue
                rel = prefix + name
                old = prev.get(rel)
                # Fast path, inlined: most entries are unchanged regular files.
                if (old is not None and (mode & _S_IFMT) == _S_IFREG
                        and st.st_mtime_ns < racy_after
                        and old.stat_key()[1:] == (mode & 0o777, st.st_size, st.st_mtime_ns)
                        and old.type == FILE):
                    out[rel] = old
                    added.append(rel)
                    reused += 1
                    continue
                if old is None and not hash_new and (mode & _S_IFMT) == _S_IFREG:
                    out[rel] = Entry(FILE, st.st_size, st.st_mtime_ns, mode & 0o777)
                    added.append(rel)
                    continue
                entry = entry_from_stat(de.path, st, old, racy_after)
                if entry is None:
                    if (mode & _S_IFMT) == _S_IFREG:
                        unreadable += 1
                        if old is not None and old.type == FILE:
                            out[rel] = old  # unreadable is not deleted: keep it as last seen
                            added.append(rel)
                    continue
                if entry is old:
                    reused += 1
                elif entry.type == FILE and (old is None or entry.hash is not old.hash):
                    hashed += 1
                out[rel] = entry
                added.append(rel)
                if is_dir:
                    stack.append(rel)
            if 0 <= limit < len(out):
                raise TooManyEntries(limit)
            self.stats = ScanStats(len(out), hashed, unreadable, reused)
            yield added


def _keep_below(reldir: str, prev: dict[str, Entry], out: dict[str, Entry]) -> list[str]:
    """Copy `prev`'s entries below the unreadable folder `reldir` into `out`; their paths."""
    prefix = f"{reldir}/" if reldir else ""
    kept = []
    for rel, entry in prev.items():
        if rel.startswith(prefix) and rel not in out:
            out[rel] = entry
            kept.append(rel)
    return kept


def rescan(root: Path, rules: IgnoreRules, previous: Manifest,
           changed: Iterable[str]) -> tuple[Manifest, ScanStats]:
    """`previous` brought up to date for the `changed` paths only (a folder stands for its
    whole subtree), with no walk of the rest: for a caller that knows, from a filesystem
    watcher running since `previous` was scanned, that nothing else changed (issue #8).

    The snapshot time stays that of `previous`, so its racy window keeps applying and any
    path changed since is re-hashed rather than trusted on size and mtime.
    """
    new = Manifest(dict(previous.entries), previous.scanned_at_ns)
    _, stats = rescan_in_place(root, rules, new, changed)
    return new, stats


def rescan_in_place(root: Path, rules: IgnoreRules, manifest: Manifest,
                    changed: Iterable[str], max_entries: int | None = None
                    ) -> tuple[dict[str, Entry | None], ScanStats]:
    """`rescan`, changing `manifest` itself: no copy of a 100k-entry mapping (issue 21).
    Returns what every path it touched held before (None: absent), the undo log a caller
    diffs against (`diff_touched`) and journals (sync/journal.py). Over `max_entries`
    raises TooManyEntries, leaving `manifest` part-changed (the caller drops it)."""
    entries = manifest.entries
    before: dict[str, Entry | None] = {}
    racy_after = manifest.racy_after_ns()
    hashed = unreadable = 0
    base = os.fspath(root)

    def put(rel: str, entry: Entry) -> None:
        if rel not in before:
            before[rel] = entries.get(rel)
        entries[rel] = entry

    def drop(rel: str) -> Entry | None:
        old = entries.pop(rel, None)
        if rel not in before:
            before[rel] = old
        return old

    for rel in sorted(set(changed)):  # a folder before what it contains
        old = drop(rel)
        if old is not None and old.type == DIR:
            # One pass over the keys: only when a changed path was a folder (created,
            # removed, chmodded); edits inside one name the file, not the folder.
            prefix = rel + "/"
            for key in [k for k in entries if k.startswith(prefix)]:
                drop(key)
        parent, _, name = rel.rpartition("/")
        if parent and getattr(entries.get(parent), "type", None) != DIR:
            continue  # its folder is gone, ignored or not a folder: nothing below travels
        path = os.path.join(base, rel)
        try:
            st = os.lstat(path)
        except OSError:
            continue  # deleted
        is_dir = stat.S_ISDIR(st.st_mode)
        if rules.for_dir(parent).ignored(name, is_dir):
            continue
        entry = entry_from_stat(path, st, old, racy_after)
        if entry is None:
            unreadable += stat.S_ISREG(st.st_mode)
            if old is not None and old.type == FILE and stat.S_ISREG(st.st_mode):
                put(rel, old)  # unreadable is not deleted
            continue
        if entry.type == FILE and (old is None or entry.hash is not old.hash):
            hashed += 1
        put(rel, entry)
        if entry.type == DIR:
            known = {k: v for k, v in before.items() if v is not None}
            sub, stats = scan_with_stats(root, rules, Manifest(known, manifest.scanned_at_ns),
                                         start=rel, max_entries=max_entries)
            for key, sub_entry in sub.entries.items():
                put(key, sub_entry)
            hashed += stats.hashed
            unreadable += stats.unreadable
            if max_entries is not None and len(entries) > max_entries:
                raise TooManyEntries(max_entries)
    reused = len(entries) - hashed
    return before, ScanStats(len(entries), hashed, unreadable, reused)


@dataclass
class Delta:
    """What turns `old` into `new`: paths to (re)send, and paths to delete."""

    changed: list[str]  # sorted: a folder always precedes what it contains
    deleted: list[str]  # sorted deepest first: contents before their folder

    @property
    def empty(self) -> bool:
        return not self.changed and not self.deleted


def diff(old: Manifest | None, new: Manifest) -> Delta:
    """Paths new or different in content, type, mode or target; and paths gone.

    A file whose mtime changed but whose content (hash) and mode did not is not changed.
    """
    old_entries = old.entries if old is not None else {}
    changed = [p for p, e in new.entries.items()
               if (o := old_entries.get(p)) is not e and (o is None or not same_content(o, e))]
    deleted = [p for p in old_entries if p not in new.entries]
    changed.sort()
    deleted.sort(reverse=True)
    return Delta(changed, deleted)


def diff_touched(before: dict[str, Entry | None], new: Manifest) -> Delta:
    """`diff` for a manifest changed in place: only the paths in `before` (what they held,
    None: absent) can differ, so only they are compared (issue 21)."""
    entries = new.entries
    changed = [p for p, o in before.items()
               if (e := entries.get(p)) is not None and e is not o
               and (o is None or not same_content(o, e))]
    deleted = [p for p, o in before.items() if o is not None and p not in entries]
    changed.sort()
    deleted.sort(reverse=True)
    return Delta(changed, deleted)


def apply_delta(old: Manifest, delta: Delta, new: Manifest) -> Manifest:
    """`old` with the delta's entries taken from `new` (what a receiver ends up holding)."""
    gone = set(delta.deleted)
    entries = {p: e for p, e in old.entries.items() if p not in gone}
    for p in delta.changed:
        entries[p] = new.entries[p]
    return Manifest(entries, new.scanned_at_ns)


def forget(entries: dict[str, Entry], paths: Iterable[str]) -> list[str]:
    """Drop `paths` and everything below them from `entries`, in one pass over the keys;
    returns what was dropped."""
    gone = set(paths)
    if not gone:
        return []
    dropped = []
    for rel in list(entries):
        if rel in gone:
            del entries[rel]
            dropped.append(rel)
            continue
        cut = rel.find("/")
        while cut >= 0:
            if rel[:cut] in gone:
                del entries[rel]
                dropped.append(rel)
                break
            cut = rel.find("/", cut + 1)
    return dropped


def drop_paths(entries: dict[str, Entry], paths: Iterable[str]) -> list[str]:
    """`forget` for a manifest scanned from a disk, where nothing lies below a file or a
    link: deleting files costs their own count (issue 21); a folder, or a path the mapping
    does not hold, takes `forget`'s pass over the keys."""
    gone = set(paths)
    if all(getattr(entries.get(p), "type", DIR) != DIR for p in gone):
        for rel in gone:
            del entries[rel]
        return list(gone)
    return forget(entries, gone)
