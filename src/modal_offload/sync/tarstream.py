"""The wire format: one JSON header line, then (when files travel) a raw streamed tar.

    {"v": 1, "op": "apply", "files": 3, "bytes": 1048576, "deleted": [...], ...}\\n
    <tar, written with tarfile "w|": nothing is buffered beyond one record>

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
from typing import IO, TYPE_CHECKING, Any

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


class _ExactReader:
    """Exactly `size` bytes of `fh`: a file that grew is cut, one that shrank or failed to
    read is padded (its next scan sees a new size or mtime and sends it again). Once a
    member's header is out, the archive must stay valid whatever happens to the file."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self._fh, self._left, self._failed = fh, size, False

    def read(self, n: int = -1) -> bytes:
        want = self._left if n is None or n < 0 else min(n, self._left)
        parts, got = [], 0
        while got < want and not self._failed:
            try:
                data = self._fh.read(want - got)
            except OSError:
                data = b""
            if not data:
                self._failed = True
                break
            parts.append(data)
            got += len(data)
        if got < want:
            parts.append(b"\0" * (want - got))
        self._left -= want
        return b"".join(parts)


@dataclass
class PackStats:
    files: int = 0  # members written (files, folders, symlinks)
    content_bytes: int = 0  # file content bytes
    vanished: int = 0  # listed but gone (or unreadable) by the time it was packed


def _tarinfo(relpath: str, kind: str, mode: int, mtime_ns: int, size: int = 0,
             target: str = "") -> tarfile.TarInfo:
    import tarfile  # lazily: a no-change collect on the remote never needs it

    ti = tarfile.TarInfo(relpath)
    ti.type = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, LINK: tarfile.SYMTYPE}[kind]
    ti.mode = mode & 0o777
    ti.mtime = max(0, mtime_ns // 1_000_000_000)
    ti.size = size
    ti.linkname = target
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def pack(root: str | os.PathLike[str], paths: Iterable[str], entries: dict[str, Entry],
         out: IO[bytes] | CountingWriter) -> PackStats:
    """Stream a tar of `paths` (sorted: folders before their contents) to `out`.

    The type of each path comes from its manifest entry; mode, size, target and content
    are read from disk at packing time, under O_NOFOLLOW so a file swapped for a symlink
    after the scan cannot make us send what it points to.
    """
    stats = PackStats()
    base = os.fspath(root)
    import tarfile

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                      encoding="utf-8", errors="surrogateescape") as tar:
        for rel in paths:
            entry = entries[rel]
            path = os.path.join(base, rel)
            try:
                if entry.type == DIR:
                    st = os.lstat(path)
                    if not stat.S_ISDIR(st.st_mode):
                        raise FileNotFoundError(path)
                    tar.addfile(_tarinfo(rel, DIR, st.st_mode, st.st_mtime_ns))
                elif entry.type == LINK:
                    target = os.readlink(path)
                    st = os.lstat(path)
                    tar.addfile(_tarinfo(rel, LINK, 0o777, st.st_mtime_ns, target=target))
                else:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
                    with os.fdopen(fd, "rb") as fh:
                        st = os.fstat(fd)
                        if not stat.S_ISREG(st.st_mode):
                            raise FileNotFoundError(path)
                        ti = _tarinfo(rel, FILE, st.st_mode, st.st_mtime_ns, st.st_size)
                        tar.addfile(ti, _ExactReader(fh, st.st_size))
                        stats.content_bytes += st.st_size
            except OSError:
                stats.vanished += 1
                continue
            stats.files += 1
    return stats
