"""Reading a received tar stream: a small, strict reader for the archives `pack` writes.

tarfile's stream mode costs ~22 us per member on this machine (header parsing through
generic helpers, and every TarInfo kept in a list until the archive ends), two thirds of
the receiver's time on a first sync of small files. This reader parses what our sender
writes (POSIX ustar headers, PAX extended records for long or non-ASCII names and large
sizes) and refuses everything else as a malformed archive, raising tarfile's own
exceptions so callers keep one error path:

- a bad checksum, a number that is not octal, a header that is not ustar, a PAX record
  that does not parse, or a stream that ends before the end-of-archive block: ReadError
  (tarfile reads a damaged header after the first one as the end of the archive and a
  truncation at a member boundary as a complete one; here both are errors);
- a PAX record over MAX_MEMBER_METADATA, global PAX headers, GNU sparse members, GNU
  long-name records: MetadataRefused, before the record is read (our sender never writes
  them, and a hostile peer could otherwise make us buffer gigabytes of metadata).

Members of other types (hard links, devices, fifos) are returned for the caller to refuse;
like tarfile, only regular files (and unknown types) carry content.
"""

from __future__ import annotations

import struct
import tarfile
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .safety import MAX_MEMBER_METADATA, MetadataRefused

BLOCK = 512
_READ = 256 * 1024  # bytes asked of the source at a time (it may return fewer)
_ZERO = bytes(BLOCK)
_MAGIC = b"ustar\x0000"  # POSIX; what tarfile's PAX format writes
REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)  # tarfile's isreg()
_NO_CONTENT = (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
               tarfile.BLKTYPE, tarfile.FIFOTYPE)
_PAX = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_REFUSED = {tarfile.XGLTYPE: "global-header member refused",
            tarfile.GNUTYPE_SPARSE: "GNU sparse member refused",
            tarfile.GNUTYPE_LONGNAME: "GNU long-name record refused",
            tarfile.GNUTYPE_LONGLINK: "GNU long-link record refused"}
_SIGNED = struct.Struct("148b8x356b")


class Member(NamedTuple):
    name: str
    type: bytes  # the tar type flag (tarfile.REGTYPE, DIRTYPE, SYMTYPE, ...)
    mode: int
    mtime: int  # whole seconds
    size: int  # content bytes (0 for types without content)
    linkname: str
    metadata: int  # header and PAX record bytes before the content

    def isreg(self) -> bool:
        return self.type in REGULAR

    def isdir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE


class TarReader:
    """Iterate `Member`s of the tar read from `source` (its `read1` if it has one, else
    `read`; either may return fewer bytes than asked). After a regular member is yielded,
    `chunks()` gives its content; what the caller does not read is skipped."""

    def __init__(self, source: object) -> None:
        # Any object with `read` will do (a pipe, a ChunkReader, BytesIO): not typed.
        self._read: Callable[[int], bytes] = (getattr(source, "read1", None)
                                              or getattr(source, "read"))  # noqa: B009
        self._buf = b""
        self._pos = 0
        self._left = 0  # content (and padding) of the current member not yet consumed
        self._pad = 0

    # --------------------------------------------------------------- raw bytes
    def _more(self) -> bool:
        chunk = self._read(_READ)
        if not chunk:
            return False
        self._buf = self._buf[self._pos:] + chunk if self._pos < len(self._buf) else chunk
        self._pos = 0
        return True

    def _take(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            if not self._more():
                raise tarfile.ReadError("unexpected end of data")
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out

    def _skip(self, n: int) -> None:
        while n:
            if self._pos >= len(self._buf) and not self._more():
                raise tarfile.ReadError("unexpected end of data")
            step = min(n, len(self._buf) - self._pos)
            self._pos += step
            n -= step

    def content(self) -> bytes:
        """The current member's whole content (for small members: one piece, no loop)."""
        data = self._take(self._left)
        self._left = 0
        return data

    def chunks(self) -> Iterator[bytes]:
        """The current member's content, in pieces as they arrive."""
        while self._left:
            if self._pos >= len(self._buf) and not self._more():
                raise tarfile.ReadError("unexpected end of data")
            step = min(self._left, len(self._buf) - self._pos)
            piece = self._buf[self._pos:self._pos + step]
            self._pos += step
            self._left -= step
            yield piece

    # ----------------------------------------------------------------- members
    def __iter__(self) -> Iterator[Member]:
        while True:
            self._skip(self._left + self._pad)
            self._left = self._pad = 0
            member = self._next()
            if member is None:
                return
            self._left = member.size
            self._pad = -member.size % BLOCK
            yield member

    def _next(self) -> Member | None:
        block = self._take(BLOCK)
        if block == _ZERO:
            return None  # the end-of-archive marker (what follows is not read)
        metadata = BLOCK
        pax: dict[str, str] = {}
        kind = block[156:157]
        if kind in _PAX:
            _check(block)
            size = _number(block[124:136])
            if size > MAX_MEMBER_METADATA:
                raise MetadataRefused(f"a metadata record of {size} bytes (the limit is "
                                      f"{MAX_MEMBER_METADATA})")
            pax = _pax_records(self._take(size))
            self._skip(-size % BLOCK)
            metadata += size + -size % BLOCK + BLOCK
            block = self._take(BLOCK)
            kind = block[156:157]
            if kind in _PAX or block == _ZERO:
                raise tarfile.ReadError("a PAX header not followed by a member")
        _check(block)
        if kind in _REFUSED:
            raise MetadataRefused(_REFUSED[kind])
        name = _text(block[0:100])
        prefix = _text(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
        linkname = _text(block[157:257])
        size = _number(block[124:136])
        mtime = _number(block[136:148])
        if pax:
            if any(key.startswith("GNU.sparse.") for key in pax):
                raise MetadataRefused("GNU sparse member refused")
            name = pax.get("path", name)
            linkname = pax.get("linkpath", linkname)
            size = _pax_number(pax, "size", size, int)
            mtime = int(_pax_number(pax, "mtime", mtime, float))
            if mtime >= _MAX_MTIME:  # its nanoseconds would not fit a manifest entry
                raise tarfile.ReadError("PAX mtime out of range")
        if kind == tarfile.AREGTYPE and name.endswith("/"):
            kind = tarfile.DIRTYPE  # old V7 style, as tarfile reads it
        if kind == tarfile.DIRTYPE:
            name = name.rstrip("/")
        if kind in _NO_CONTENT:
            size = 0  # as tarfile: these types never carry content
        return Member(name, kind, _number(block[100:108]), mtime, size, linkname, metadata)


def _check(block: bytes) -> None:
    if block[257:265] != _MAGIC:
        raise tarfile.ReadError("not a POSIX tar header")
    stored = _number(block[148:156])
    unsigned = sum(block) - sum(block[148:156]) + 256
    if stored != unsigned and stored != sum(_SIGNED.unpack_from(block)) + 256:
        raise tarfile.ReadError("bad checksum")


def _number(field: bytes) -> int:
    """An octal field (NUL- or space-terminated), as tarfile's nti reads it; the base-256
    form is refused (our sender writes a PAX record for numbers that need it)."""
    if field[-1] == 0:
        try:
            return int(field[:-1], 8)  # ours: all digits, one NUL (the common case)
        except ValueError:
            pass
    cut = field.find(b"\0")
    text = (field if cut < 0 else field[:cut]).strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise tarfile.ReadError("invalid number in a header") from None


def _text(field: bytes) -> str:
    if not field[0]:
        return ""  # the usual prefix and link name
    cut = field.find(b"\0")
    return (field if cut < 0 else field[:cut]).decode("utf-8", "surrogateescape")


# Seconds whose nanoseconds still fit the signed 64 bits of an entry's mtime_ns (and of
# st_mtime_ns): past the year 2262.
_MAX_MTIME = ((1 << 63) - 1) // 1_000_000_000


def _pax_number(pax: dict[str, str], key: str, default: int, kind: type) -> int:
    if key not in pax:
        return default
    try:
        value = kind(pax[key])
    except ValueError:
        raise tarfile.ReadError(f"invalid PAX {key}") from None
    if not 0 <= value < 1 << 63:
        raise tarfile.ReadError(f"PAX {key} out of range")
    return int(value)


def _pax_records(data: bytes) -> dict[str, str]:
    """`<length> <keyword>=<value>\\n` records (POSIX.1-2008). Values are UTF-8; names our
    sender could not decode travel as raw bytes (hdrcharset=BINARY), read back here with
    surrogateescape as tarfile does with our encoding and error handler."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        space = data.find(b" ", pos, pos + 20)
        try:
            length = int(data[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        record = data[pos:pos + length]
        equals = record.find(b"=")
        if length <= 0 or len(record) != length or not record.endswith(b"\n") or equals < 0:
            raise tarfile.ReadError("invalid PAX record")
        key = record[space - pos + 1:equals].decode("utf-8", "surrogateescape")
        out[key] = record[equals + 1:-1].decode("utf-8", "surrogateescape")
        pos += length
    if "path" in out:
        out["path"] = out["path"].rstrip("/")  # as tarfile's _apply_pax_info
    return out
