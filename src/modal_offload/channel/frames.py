"""The channel's wire format: `kind (1 byte) | id (u32) | length (u32) | payload`.

Used by both ends, so it imports only the standard library. `id` names one command on
the channel (0 for the channel itself). Control payloads are JSON objects; data payloads
are raw bytes, never more than MAX_PAYLOAD each (writers split larger data).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any

HEADER = struct.Struct(">cII")
MAX_PAYLOAD = 1 << 20
DATA_CHUNK = 64 * 1024

# host -> agent (RESIZE: a command's terminal got a new window size)
EXEC, STDIN, STDIN_EOF, SIGNAL, MARK, RESIZE = b"X", b"I", b"E", b"S", b"K", b"W"
# agent -> host (QUEUED: an EXEC that waits for the sync it comes `after` was received)
HELLO, STARTED, QUEUED, STDOUT, STDERR, STDOUT_EOF, STDERR_EOF, EXIT = (
    b"H", b"P", b"Q", b"O", b"R", b"o", b"r", b"Z")
KINDS = frozenset({EXEC, STDIN, STDIN_EOF, SIGNAL, MARK, RESIZE, HELLO, STARTED, QUEUED,
                   STDOUT, STDERR, STDOUT_EOF, STDERR_EOF, EXIT})
JSON_KINDS = frozenset({EXEC, SIGNAL, RESIZE, HELLO, STARTED, QUEUED, EXIT})


class FrameError(ValueError):
    """The peer sent something that is not a frame of this protocol."""


def encode(kind: bytes, cid: int, payload: bytes = b"") -> bytes:
    if kind not in KINDS or len(payload) > MAX_PAYLOAD or not 0 <= cid < 1 << 32:
        raise FrameError(f"cannot encode kind={kind!r} id={cid} length={len(payload)}")
    return HEADER.pack(kind, cid, len(payload)) + payload


def encode_json(kind: bytes, cid: int, obj: dict[str, Any]) -> bytes:
    return encode(kind, cid, json.dumps(obj, separators=(",", ":")).encode())


def encode_data(kind: bytes, cid: int, data: bytes) -> bytes:
    """`data` as as many frames as it takes (one empty frame for empty data)."""
    if not data:
        return encode(kind, cid)
    return b"".join(encode(kind, cid, data[i:i + DATA_CHUNK])
                    for i in range(0, len(data), DATA_CHUNK))


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise FrameError(f"bad control payload: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError("a control payload must be a JSON object")
    return obj


def read_frames(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, int, bytes]]:
    """(kind, id, payload) for each whole frame in the byte stream `chunks`; stops at EOF
    (a frame cut short by EOF is dropped: the peer died while writing it)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        start = 0
        while len(buf) - start >= HEADER.size:
            kind, cid, length = HEADER.unpack_from(buf, start)
            if kind not in KINDS or length > MAX_PAYLOAD:
                raise FrameError(f"not a channel frame (kind={kind!r}, length={length})")
            end = start + HEADER.size + length
            if end > len(buf):
                break
            yield kind, cid, bytes(buf[start + HEADER.size:end])
            start = end
        del buf[:start]
