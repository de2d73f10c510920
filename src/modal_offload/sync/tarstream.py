"""The wire format: one JSON header line, then (when files travel) a streamed tar.

    {"v": 1, "op": "apply", "files": 3, "bytes": 1048576, "deleted": [...], ...}\\n
    <tar: the bytes tarfile's "w|" mode writes (PAX format), built here (see _header);
     in compressed frames when the header says "compression" (compress.py)>

The header carries what a tar cannot (deletions, counts, the over-cap verdict) and comes
first, so a receiver can decide before reading any content. Both directions use it.
Members carry mode and mtime (whole seconds: a PAX header per file would double the size
of a tree of small files) and never owner names or ids.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import tarfile

from .manifest import DIR, FILE, LINK, Entry

PROTOCOL = 1
MAX_HEADER_BYTES = 64 << 20  # a header lists paths; beyond this it is garbage, not a header
_CHUNK = 1 << 20


class ProtocolError(Exception):
    """The peer sent something that is not our wire format."""


def encode_header(fields: dict[str, Any]) -> bytes:
    return (json.dumps({"v": PROTOCOL, **fields}, separators=(",", ":")) + "\n").encode()


def parse_header(line: bytes) -> dict[str, Any]:
    if not line.endswith(b"\n"):
        raise ProtocolError("truncated or oversized header line")
    try:
        header = json.loads(line)
    except ValueError:
        raise ProtocolError(f"header is not JSON: {line[:80]!r}") from None
    if not isinstance(header, dict) or header.get("v") != PROTOCOL:
        raise ProtocolError(f"unsupported protocol version in header: {line[:80]!r}")
    return header


class ChunkReader:
    """A read-only file over an iterator of byte chunks (a remote process's stdout).

    `read(n)` returns what is at hand (at least one byte until EOF) instead of blocking
    for all `n`: tarfile's stream mode over-asks, and the peer may keep its end open
    after the archive (waiting for our acknowledgement), so filling `n` could deadlock.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""
        self._eof = False
        self.bytes_read = 0  # everything received from the peer, header included

    def _fill(self) -> bool:
        while not self._buf and not self._eof:
            try:
                chunk = next(self._it)
            except StopIteration:
                self._eof = True
                return False
            self.bytes_read += len(chunk)
            self._buf = chunk
        return bool(self._buf)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while self._fill():
                parts.append(self._buf)
                self._buf = b""
            return b"".join(parts)
        if not self._fill():
            return b""
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readline(self, limit: int = MAX_HEADER_BYTES) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size < limit and self._fill():
            cut = self._buf.find(b"\n", 0, limit - size)
            take = min(len(self._buf), limit - size) if cut < 0 else cut + 1
            parts.append(self._buf[:take])
            self._buf = self._buf[take:]
            size += take
            if cut >= 0:
                break
        return b"".join(parts)

    def drain(self) -> None:
        while self._fill():
            self._buf = b""


class CountingWriter:
    """Buffers writes into large chunks for `sink` (one RPC per chunk on a real remote)."""

    def __init__(self, sink: Callable[[bytes], object], chunk: int = 256 * 1024,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self._sink = sink
        self._chunk = chunk
        self._parts: list[bytes] = []
        self._pending = 0
        self._on_bytes = on_bytes
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        n = len(data)
        if n:
            self._parts.append(bytes(data))
            self._pending += n
            self.bytes_written += n
            if self._pending >= self._chunk:
                self.flush()
        return n

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts, self._pending = [], 0
            self._sink(data)
            if self._on_bytes is not None:
                self._on_bytes(len(data))


@dataclass
class PackStats:
    files: int = 0  # members written (files, folders, symlinks)
    content_bytes: int = 0  # file content bytes
    vanished: int = 0  # listed but gone (or unreadable) by the time it was packed


Progress = Callable[[int, int], None]  # (members written, content bytes) so far
_NS = 1_000_000_000
_TELL_FILES = 256  # progress is told at most every this many members or _CHUNK bytes


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


def pack(root: str | os.PathLike[str], paths: Iterable[str], entries: dict[str, Entry],
         out: Writable, progress: Progress | None = None) -> PackStats:
    """Stream a tar of `paths` (sorted: folders before their contents) to `out`.

    The type of each path comes from its manifest entry; mode, size, target and content
    are read from disk at packing time, under O_NOFOLLOW so a file swapped for a symlink
    after the scan cannot make us send what it points to.

    Each file is read once: an entry without a hash (a scan that left hashing to us, see
    manifest.scan_with_stats) gets the hash of the bytes that went into the archive, which
    is exactly what the receiver holds; such an entry whose file vanished is dropped from
    `entries`, since the receiver has no copy of it (the next scan finds it as new).

    The bytes are those tarfile's stream mode writes (PAX format), small members batched
    into writes of about 1 MiB; `progress(members, content_bytes)` is called every few
    hundred members or MiB, and once at the end.
    """
    import hashlib  # only when something travels: a warm no-change command never packs (#17)

    stats = PackStats()
    base = os.fspath(root)
    buf: list[bytes] = []  # joined once per write: each byte is copied once here
    pending = 0  # bytes in buf
    written = 0  # archive bytes handed to `out`, for the final padding

    def flush() -> None:
        nonlocal written, pending
        if buf:
            out.write(b"".join(buf))
            written += pending
            buf.clear()
            pending = 0

    told_files = told_bytes = 0
    for rel in paths:
        entry = entries[rel]
        path = os.path.join(base, rel)
        try:
            if entry.type == FILE:
                fd = os.open(path, _READ_FLAGS)
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        raise FileNotFoundError(path)
                    size = st.st_size
                    head = _header(rel, FILE, st.st_mode, size, st.st_mtime_ns // _NS)
                    buf.append(head)
                    pending += len(head)
                    hasher = hashlib.blake2b(digest_size=16)
                    left = size
                    while left:  # exactly `size` bytes: see _read
                        data = _read(fd, min(left, _CHUNK))
                        hasher.update(data)
                        left -= len(data)
                        if len(data) < _CHUNK // 4:
                            buf.append(data)  # small files travel in batches
                            pending += len(data)
                        else:
                            flush()
                            out.write(data)
                            written += len(data)
                    pad = -size % _BLOCK
                    if pad:
                        buf.append(_ZEROS[:pad])
                        pending += pad
                finally:
                    os.close(fd)
                if entry.hash is None:
                    entries[rel] = entry.with_digest(hasher.digest())
                stats.content_bytes += size
            elif entry.type == DIR:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode):
                    raise FileNotFoundError(path)
                head = _header(rel, DIR, st.st_mode, 0, st.st_mtime_ns // _NS)
                buf.append(head)
                pending += len(head)
            else:
                target = os.readlink(path)
                st = os.lstat(path)
                head = _header(rel, LINK, 0o777, 0, st.st_mtime_ns // _NS, target)
                buf.append(head)
                pending += len(head)
        except OSError:
            stats.vanished += 1
            if entry.type == FILE and entry.hash is None:
                del entries[rel]  # never sent, never hashed: unknown to the receiver
            continue
        stats.files += 1
        if pending >= _CHUNK:
            flush()
        if progress is not None and (stats.files - told_files >= _TELL_FILES
                                     or stats.content_bytes - told_bytes >= _CHUNK):
            told_files, told_bytes = stats.files, stats.content_bytes
            progress(stats.files, stats.content_bytes)
    # The end-of-archive marker, and padding to a whole record, as tarfile writes them.
    buf.append(bytes(2 * _BLOCK))
    pending += 2 * _BLOCK
    buf.append(bytes(-(written + pending) % _RECORD))
    pending += len(buf[-1])
    flush()
    if progress is not None:
        progress(stats.files, stats.content_bytes)
    return stats


_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _read(fd: int, n: int) -> bytes:
    """Up to `n` bytes of `fd`, never fewer than asked: a file that shrank or failed to read
    is padded with zeros (its next scan sees a new size or mtime and sends it again), and
    one that grew is cut by the caller's count. Once a member's header is out, the archive
    must stay valid whatever happens to the file."""
    try:
        data = os.read(fd, n)
    except OSError:
        data = b""
    return data if data else bytes(n)


_BLOCK = 512
_ZEROS = bytes(_BLOCK)
_RECORD = 20 * _BLOCK  # tarfile pads a finished archive to a whole record (tar -b20)
_TYPES = {FILE: b"0", DIR: b"5", LINK: b"2"}
_LIMIT = 8 ** 11  # an 11-digit octal field: larger sizes or mtimes need a PAX record
# A ustar header's fixed parts for a member of ours (uid and gid 0, no owner names, no
# device numbers, no prefix), as tarfile.TarInfo._create_header writes them.
_IDS = b"0000000\0" * 2
_TAIL = b"ustar\x0000" + bytes(32 + 32 + 8 + 8 + 155 + 12)
_FIXED_SUM = sum(_IDS) + sum(_TAIL) + 8 * 32  # the checksum counts its own field as spaces


def _header(name: str, kind: str, mode: int, size: int, mtime: int, target: str = "") -> bytes:
    """The header block(s) tarfile writes for this member in PAX format (the format test
    checks byte equality), built directly: TarInfo.tobuf costs ~25 us per member, a third
    of a first sync of small files. What needs a PAX record (a non-ASCII name or target,
    one over 100 bytes, a size from 8 GiB) still goes through tarfile."""
    mtime = max(0, mtime)
    if kind == DIR and not name.endswith("/"):
        name += "/"  # as TarInfo.get_info does
    if not (len(name) <= 100 and len(target) <= 100 and name.isascii() and target.isascii()
            and size < _LIMIT and mtime < _LIMIT):
        import tarfile  # lazily: only unusual names need it (a collect never imports it)

        return _tarinfo(name, kind, mode, mtime, size, target).tobuf(
            tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    name_b, link_b = name.encode(), target.encode()
    head = b"%s%s%07o\0%s%011o\0%011o\0" % (name_b, bytes(100 - len(name_b)), mode & 0o777,
                                              _IDS, size, mtime)
    rest = b"%s%s%s%s" % (_TYPES[kind], link_b, bytes(100 - len(link_b)), _TAIL)
    chksum = sum(head) - sum(_IDS) + sum(link_b) + _TYPES[kind][0] + _FIXED_SUM
    return b"%s%06o\0 %s" % (head, chksum, rest)


def _tarinfo(name: str, kind: str, mode: int, mtime: int, size: int,
             target: str) -> tarfile.TarInfo:
    import tarfile

    ti = tarfile.TarInfo(name)
    ti.type = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, LINK: tarfile.SYMTYPE}[kind]
    ti.mode = mode & 0o777
    ti.mtime = mtime
    ti.size = size
    ti.linkname = target
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def write_stream(writer: CountingWriter, fields: dict[str, Any], root: str | os.PathLike[str],
                 paths: list[str] | Iterator[str], entries: dict[str, Entry], *,
                 compress: bool, progress: Progress | None = None) -> PackStats | None:
    """One sync stream, either direction: the header (`fields`), then, when `paths` is not
    empty (an iterator, a walk under way, always counts as not empty), their archive;
    framed and compressed where it pays when `compress` (the header then says so:
    sync/compress.py). Everything is flushed to `writer`'s sink."""
    out: Writable = writer
    deflater = None
    if compress and paths:
        from .compress import ZLIB, Deflater

        fields = {**fields, "compression": ZLIB}
        out = deflater = Deflater(writer.write)
    writer.write(encode_header(fields))
    stats = None
    if paths:
        stats = pack(root, paths, entries, out, progress)
    if deflater is not None:
        deflater.flush()
    writer.flush()
    return stats
