"""Compression of a sync stream's archive, both directions (issue 17 item 3).

A stream whose header says `"compression": "zlib"` carries its archive as frames:

    <4 bytes big-endian: bit 31 set when compressed, bits 0-30 the payload length>
    <payload: zlib (level 1) of at most FRAME bytes of archive, or those bytes as they are>

Why frames, not one zlib stream: each frame is decided alone, so what does not compress
(archives, images, model weights) travels as it is after one try, and the receiver's
memory is bounded by construction: a frame may not inflate beyond FRAME bytes, so a zlib
bomb is refused at its first frame, and what does inflate is archive the extractor counts
against its cap like any other (extract.SafeExtractor counts decompressed bytes).
Deflate's window is 32 KiB, so cutting every 256 KiB costs under 1% of the ratio.

When it pays (measured by benchmarks/bench_compress.py): level 1 made this repository's
sources 3.3x smaller for ~60 MB/s of CPU, which pays on any link slower than ~300 Mbit/s;
level 6 was 4.0x for a quarter of the speed. So: level 1, and a frame goes compressed only
when that saves at least an eighth of it. Before compressing a frame, three 2 KiB samples
of it (start, middle, end) are: if they do not shrink by a tenth, the frame is sent as it
is (archives, images, weights cost ~2% of the CPU of compressing them; a tree mixing them
with text is judged frame by frame). Frames under TINY bytes are never tried. Over a local
pipe compression is pure cost, so the session decides (`Session.compress_sync`: False for
the local backend).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping

from .tarstream import ProtocolError

ZLIB = "zlib"  # the header's "compression" value
FRAME = 256 * 1024  # archive bytes per frame, at most
LEVEL = 1
TINY = 512  # a frame this small saves a few hundred bytes at best: never tried
SAMPLE = 2048  # bytes of each of a frame's three samples
_COMPRESSED = 1 << 31
_MAX_PAYLOAD = FRAME + FRAME // 8 + 64  # zlib's worst case for FRAME bytes, with margin
_LEN = struct.Struct(">I")


class Deflater:
    """A writable file that frames (and compresses what pays) into `out.write`."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        while len(self._buf) >= FRAME:
            self._frame(bytes(self._buf[:FRAME]))
            del self._buf[:FRAME]
        return len(data)

    def flush(self) -> None:
        """Send what is buffered as a (shorter) frame."""
        if self._buf:
            self._frame(bytes(self._buf))
            self._buf.clear()

    def _frame(self, raw: bytes) -> None:
        if len(raw) >= TINY and _worth_trying(raw):
            packed = zlib.compress(raw, LEVEL)
            if len(packed) <= len(raw) - len(raw) // 8:
                self._write(_LEN.pack(_COMPRESSED | len(packed)) + packed)
                return
        self._write(_LEN.pack(len(raw)) + raw)


def _worth_trying(raw: bytes) -> bool:
    """Whether samples of `raw` shrink by a tenth (what is already compressed does not)."""
    if len(raw) <= 4 * SAMPLE:
        return True
    middle = len(raw) // 2
    sample = raw[:SAMPLE] + raw[middle:middle + SAMPLE] + raw[-SAMPLE:]
    return len(zlib.compress(sample, LEVEL)) < len(sample) * 9 // 10


class Inflater:
    """A readable file of the archive inside the frames read from `source` (an object with
    `read`, returning what is at hand, like tarstream.ChunkReader)."""

    def __init__(self, source: object) -> None:
        # Any object with `read` will do (a pipe, a ChunkReader): not typed.
        self._read: Callable[[int], bytes] = (getattr(source, "read1", None)
                                              or getattr(source, "read"))  # noqa: B009
        self._out = b""
        self._pos = 0
        self._eof = False

    def _exactly(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            data = self._read(n - got)
            if not data:
                if got == 0 and n == _LEN.size:
                    return b""  # the stream ended between frames
                raise ProtocolError("the compressed stream ended inside a frame")
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def _next_frame(self) -> bool:
        head = self._exactly(_LEN.size)
        if not head:
            self._eof = True
            return False
        (word,) = _LEN.unpack(head)
        length = word & ~_COMPRESSED
        if length > _MAX_PAYLOAD or (not word & _COMPRESSED and length > FRAME):
            raise ProtocolError(f"a compressed-stream frame of {length} bytes")
        payload = self._exactly(length) if length else b""
        if word & _COMPRESSED:
            inflater = zlib.decompressobj()
            try:
                payload = inflater.decompress(payload, FRAME)
            except zlib.error as exc:
                raise ProtocolError(f"a frame that does not inflate: {exc}") from None
            if inflater.unconsumed_tail or not inflater.eof:
                raise ProtocolError(f"a frame that inflates beyond {FRAME} bytes")
        self._out, self._pos = payload, 0
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (at most one frame's worth, also for n < 0), b"" at the end."""
        while self._pos >= len(self._out):
            if self._eof or not self._next_frame():
                return b""
        n = FRAME if n is None or n < 0 else n
        out = self._out[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    read1 = read


def archive_reader(source: object, header: Mapping[str, object]) -> object:
    """What to extract the archive from, given the stream's header."""
    kind = header.get("compression")
    if kind is None:
        return source
    if kind != ZLIB:
        raise ProtocolError(f"unknown compression {kind!r} in the header")
    return Inflater(source)
