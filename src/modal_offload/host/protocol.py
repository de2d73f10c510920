"""The wire format between the thin client and the host, and the code fingerprint.

Messages are dicts of plain values (str, int, bool, None, lists, dicts) in `marshal`
format, framed by a 4-byte big-endian length on a Unix stream socket. marshal, not JSON:
it is built in, so the client skips importing json (and re), ~7 ms per command. It is not
meant for untrusted input, and needs none: the host reads only after checking that the
peer is this same user (SO_PEERCRED), who could run any code as us anyway.
The client's first message carries its stdin/stdout/stderr as SCM_RIGHTS ancillary data,
so the host writes straight to the client's terminal or pipe.

Stdlib only, and only cheap modules: this is on every routed command's path.
"""

from __future__ import annotations

import _socket  # not `socket`: its enums and selectors cost ~5 ms on the client's path
import marshal
import os
import struct
import sys
import zlib

TYPE_CHECKING = False  # typing itself costs ~3 ms to import on the client's path
if TYPE_CHECKING:
    from typing import Any

PROTOCOL = 1
MAX_MESSAGE = 64 << 20  # argv + environment; far above ARG_MAX, a guard against garbage
MAX_FDS = 3
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    pass


def send(sock: _socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = marshal.dumps(message)
    frame = _LEN.pack(len(data)) + data
    if fds:
        # Ancillary data travels with the first bytes; the rest follows as a plain stream.
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
        sent = sock.sendmsg([frame], rights)
        if sent < len(frame):
            sock.sendall(frame[sent:])
    else:
        sock.sendall(frame)


def _recv_exact(sock: _socket.socket, count: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(count - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def recv(sock: _socket.socket, with_fds: bool = False) -> tuple[dict[str, Any], list[int]] | None:
    """The next message and any fds passed with it; None at a clean EOF."""
    fds: list[int] = []
    if with_fds:
        head, ancillary, _flags, _addr = sock.recvmsg(_LEN.size, _socket.CMSG_SPACE(MAX_FDS * 4))
        for level, kind, data in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                whole = len(data) - len(data) % 4
                fds.extend(struct.unpack(f"{whole // 4}i", data[:whole]))
        if not head:
            return None
        if len(head) < _LEN.size:
            rest = _recv_exact(sock, _LEN.size - len(head))
            if rest is None:
                _close_all(fds)
                return None
            head += rest
    else:
        got = _recv_exact(sock, _LEN.size)
        if got is None:
            return None
        head = got
    (length,) = _LEN.unpack(head)
    if length > MAX_MESSAGE:
        _close_all(fds)
        raise ProtocolError(f"message of {length} bytes refused")
    body = _recv_exact(sock, length)
    if body is None:
        _close_all(fds)
        return None
    try:
        message = marshal.loads(body)
    except (ValueError, EOFError, TypeError) as exc:
        _close_all(fds)
        raise ProtocolError(f"bad message: {exc}") from None
    if not isinstance(message, dict):
        _close_all(fds)
        raise ProtocolError("message is not an object")
    return message, fds


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:  # noqa: SIM105 - contextlib costs ~4 ms to import on the client's path
            os.close(fd)
        except OSError:
            pass


def package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fingerprint() -> str:
    """Version, protocol and every source file's (path, size, mtime): a host running other
    code than the client (an upgrade, an edit in an editable install) is replaced."""
    from .. import __version__

    # crc32, not a cryptographic hash: it only has to notice change (hashlib's OpenSSL
    # load costs ~3 ms on every command).
    h = zlib.crc32(f"{__version__}\0{PROTOCOL}\0{sys.version}".encode())
    stack = [package_dir()]
    items: list[str] = []
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for de in entries:
            if de.name == "__pycache__":
                continue
            if de.is_dir(follow_symlinks=False):
                stack.append(de.path)
            elif de.name.endswith((".py", ".toml", ".sh")):
                st = de.stat()
                items.append(f"{de.path}\0{st.st_size}\0{st.st_mtime_ns}")
    for item in sorted(items):
        h = zlib.crc32(item.encode() + b"\n", h)
    return f"{h:08x}-{len(items)}"
