"""A manifest kept on disk as a snapshot plus an append-only journal (issue 21).

Saving a 100,000-entry manifest whole costs ~160 ms of JSON and ~10 MB of writes, and a
sync that changed one file should not pay that. So a save after a sync appends one record
naming only the paths it touched, and the snapshot is rewritten (compacted) only once the
journal has grown past the snapshot's own size: the rewrite's cost is then paid for by at
least as many bytes of change, i.e. amortised proportional to the change. A small manifest
(under `SMALL_BYTES`) is always written whole: as cheap as an append, and the snapshot
alone then says everything.

Journal records are lines `<crc32 hex> <json>\\n`. Each names the snapshot generation it
follows, the manifest's scan time, the entries put and the paths deleted (exact paths: no
subtree semantics), and the withheld/resend sets when they changed. Every record sets each
path it names to a constant, so replaying a record (or the whole journal) twice gives the
same manifest: replay is idempotent. A crash can leave a torn last line (no newline, or a
checksum that does not match): loading stops there, and the next append first cuts the
file back to the last whole record, so nothing written later is glued onto garbage. A
crash between writing a new snapshot and emptying the journal leaves records of the old
generation, which loading skips (they are in the snapshot already).

Loaded manifests are *lent*: `load()` hands the caller the store's in-memory copy (no
copy at 100k entries) and forgets it; `save()` or `keep()` hands it back. A caller that
fails in between simply leaves the store to re-read the disk next time.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from .manifest import Manifest, entry_from_list

SMALL_BYTES = 64 * 1024
JOURNAL_SUFFIX = ".journal"
_Stamp = tuple[int, int, int, int]


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def encode_record(generation: str, manifest: Manifest, touched: Iterable[str],
                  sets: bool) -> bytes:
    """One journal line: `touched` paths set to what `manifest` holds (absent: deleted)."""
    put: dict[str, tuple[Any, ...]] = {}
    deleted: list[str] = []
    entries = manifest.entries
    for path in touched:
        entry = entries.get(path)
        if entry is None:
            deleted.append(path)
        else:
            put[path] = entry.fields()
    record: dict[str, Any] = {"g": generation, "at": manifest.scanned_at_ns, "put": put,
                              "del": deleted}
    if sets:
        record["withheld"] = sorted(manifest.withheld)
        record["resend"] = sorted(manifest.resend)
    body = json.dumps(record, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def replay(manifest: Manifest, generation: str, data: bytes) -> int:
    """Apply `data`'s whole, intact records of `generation` to `manifest`; returns the
    offset just past the last intact record (where a torn or corrupt tail starts)."""
    offset = 0
    entries = manifest.entries
    while True:
        end = data.find(b"\n", offset)
        if end < 0:
            return offset  # torn tail (or nothing left)
        line = data[offset:end]
        try:
            crc, body = int(line[:8], 16), line[9:]
            if line[8:9] != b" " or zlib.crc32(body) != crc:
                return offset
            record = json.loads(body)
            if not isinstance(record, dict):
                return offset
            if record.get("g") == generation:
                put = {str(p): entry_from_list(v) for p, v in record["put"].items()}
                gone = [str(p) for p in record["del"]]
                at = int(record["at"])
                sets = [{str(p) for p in record[k]} for k in ("withheld", "resend")
                        if k in record]
                for path in gone:
                    entries.pop(path, None)
                entries.update(put)
                manifest.scanned_at_ns = at
                if sets:
                    manifest.withheld, manifest.resend = sets
        except (ValueError, TypeError, KeyError, AttributeError):
            return offset
        offset = end + 1


class Prepared(NamedTuple):
    """A snapshot written aside (`ManifestStore.prepare`)."""

    tmp: Path
    generation: str
    size: int
    state: tuple[int, frozenset[str], frozenset[str]]

    def discard(self) -> None:
        """Drop it (a no-op once it took effect)."""
        self.tmp.unlink(missing_ok=True)


class ManifestStore:
    """One manifest's files: `path` (the snapshot) and `path` + `.journal`.

    `envelope`: keys the snapshot carries beside the manifest (the client's baseline names
    its session id and workspace); a snapshot whose keys differ is treated as absent.
    Without one the snapshot is the bare manifest dict (the remote agent's file).
    `durable`: fsync each write (the laptop's baseline).
    """

    def __init__(self, path: Path, envelope: Mapping[str, Any] | None = None, *,
                 durable: bool = False, small_bytes: int = SMALL_BYTES,
                 compact_ratio: float = 1.0) -> None:
        """`small_bytes`, `compact_ratio`: a snapshot under `small_bytes` is always
        rewritten; a journal over `compact_ratio` times the snapshot is compacted (tests
        lower or raise them to reach every path)."""
        self.small_bytes = small_bytes
        self.compact_ratio = compact_ratio
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + JOURNAL_SUFFIX)
        self.envelope = dict(envelope) if envelope is not None else None
        self.durable = durable
        self._generation = ""
        self._snapshot_bytes = 0
        self._journal_end = 0  # offset past the last intact record read or written
        self._cached: Manifest | None = None
        self._stamps: tuple[_Stamp | None, _Stamp | None] = (None, None)
        self._saved: tuple[int, frozenset[str], frozenset[str]] = (0, frozenset(), frozenset())

    # ------------------------------------------------------------------ reading
    def load(self) -> Manifest | None:
        """The manifest (lent: hand it back with save() or keep()), or None when absent,
        unreadable, or recorded under another envelope."""
        stamps = (_stamp(self.path), _stamp(self.journal))
        cached, self._cached = self._cached, None
        if cached is not None and stamps == self._stamps:
            return cached
        self._stamps, self._generation = (None, None), ""
        try:
            raw = self.path.read_bytes()
            data = json.loads(raw)
            if self.envelope is not None:
                if any(data.get(k) != v for k, v in self.envelope.items()):
                    return None
                data = {**data["manifest"], "generation": data.get("generation")}
            manifest = Manifest.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        generation = data.get("generation")
        try:
            journal = self.journal.read_bytes() if isinstance(generation, str) else b""
        except FileNotFoundError:
            journal = b""
        except OSError:
            return None
        self._generation = generation if isinstance(generation, str) else ""
        self._snapshot_bytes = len(raw)
        self._journal_end = replay(manifest, self._generation, journal)
        self._saved = _state(manifest)
        self._stamps = stamps
        return manifest

    def keep(self, manifest: Manifest) -> None:
        """Hand back a lent manifest that was not changed."""
        if self._stamps[0] is not None and self._stamps == (_stamp(self.path),
                                                            _stamp(self.journal)):
            self._cached = manifest

    # ------------------------------------------------------------------ writing
    def prepare(self, manifest: Manifest) -> Prepared:
        """Write `manifest`'s snapshot aside, not in effect yet: a caller that must wait
        before it may record it (a first sync waits for the remote's answer) does the
        writing meanwhile; `save(..., prepared=)` then costs a rename when the manifest's
        sets did not change since (its entries must not either), and `discard` drops it."""
        generation = os.urandom(8).hex()
        tmp = self._tmp(self.path)
        size = self._write_to(tmp, self._snapshot_chunks(manifest, generation))
        return Prepared(tmp, generation, size, _state(manifest))

    def save(self, manifest: Manifest, touched: Iterable[str] | None = None,
             prepared: Prepared | None = None) -> None:
        """Record `manifest`. `touched`: the only paths that may differ from what was
        loaded or last saved, so only they are appended; None rewrites the snapshot.
        `prepared`: that snapshot, written aside by `prepare` (used when still valid)."""
        state = _state(manifest)
        current = (self._generation and self._stamps[0] is not None
                   and self._stamps == (_stamp(self.path), _stamp(self.journal)))
        paths = list(touched) if touched is not None and current else None
        if paths is None and prepared is not None and prepared.state == state \
                and prepared.tmp.exists():
            self._put(prepared.tmp, prepared.generation, prepared.size)
        elif paths is None:
            self._write_snapshot(manifest)
        elif not paths and state == self._saved:
            pass  # nothing to record: no write at all (the common warm command)
        elif (self._snapshot_bytes < self.small_bytes
              or self._journal_end > self._snapshot_bytes * self.compact_ratio):
            self._write_snapshot(manifest)
        else:
            self._append(encode_record(self._generation, manifest, paths,
                                       state[1:] != self._saved[1:]))
        self._saved = state
        self._stamps = (_stamp(self.path), _stamp(self.journal))
        self._cached = manifest

    def _snapshot_chunks(self, manifest: Manifest, generation: str) -> Iterator[bytes]:
        if self.envelope is None:
            chunks: Iterable[str] = manifest.json_chunks({"generation": generation})
        else:
            outer = json.dumps({**self.envelope, "generation": generation},
                               separators=(",", ":"))
            chunks = itertools.chain([outer[:-1] + ',"manifest":'], manifest.json_chunks(),
                                     ["}"])
        return (c.encode() for c in chunks)

    def _write_snapshot(self, manifest: Manifest) -> None:
        generation = os.urandom(8).hex()
        tmp = self._tmp(self.path)
        self._put(tmp, generation, self._write_to(tmp, self._snapshot_chunks(manifest,
                                                                             generation)))

    def _put(self, tmp: Path, generation: str, size: int) -> None:
        """The snapshot written to `tmp` takes effect."""
        self._replace(tmp, self.path)
        self._generation, self._snapshot_bytes = generation, size
        # Records of the old generation would be skipped; dropping them spares reading.
        self.journal.unlink(missing_ok=True)
        self._journal_end = 0

    @staticmethod
    def _tmp(path: Path) -> Path:
        return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")

    def _write_to(self, tmp: Path, chunks: Iterable[bytes]) -> int:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                for chunk in chunks:
                    _write_all(fd, chunk)
                    size += len(chunk)
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return size

    def _replace(self, tmp: Path, path: Path) -> None:
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self.durable:  # the rename itself survives a power cut only once its folder is synced
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            except OSError:
                pass
            finally:
                os.close(folder)

    def _append(self, line: bytes) -> None:
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            # Cut a torn tail (a crash mid-append) so this record starts on a fresh line.
            if os.fstat(fd).st_size != self._journal_end:
                os.ftruncate(fd, self._journal_end)
            os.lseek(fd, self._journal_end, os.SEEK_SET)
            _write_all(fd, line)
            if self.durable:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        self._journal_end += len(line)


def _state(manifest: Manifest) -> tuple[int, frozenset[str], frozenset[str]]:
    return manifest.scanned_at_ns, frozenset(manifest.withheld), frozenset(manifest.resend)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
