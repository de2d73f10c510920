"""Listening sockets for the emulator's servers."""

from __future__ import annotations

import socket


def bind_tcp(host: str, port: int) -> socket.socket:
    """A bound TCP socket (port 0 picks a free one) to hand to an asyncio server.

    Created with an explicit IPPROTO_TCP: asyncio only sets TCP_NODELAY on connections whose
    socket says proto == IPPROTO_TCP, and `socket.create_server` leaves proto at 0. Without
    NODELAY every small gRPC exchange stalls ~40 ms on Nagle + delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock
