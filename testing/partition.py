"""A TCP proxy a test can cut: the laptop's network between the real client and the emulator.

    with Partition(emu.port) as net:
        emu.advertise(net.url)       # control plane AND task router go through the proxy
        net.refuse()                 # offline: connections are refused (ECONNREFUSED)
        net.stall()                  # accepts, never answers (a dead Wi-Fi, a stuck VPN)
        net.partition(10)            # drop every live connection, refuse for 10 s, then heal
        net.heal()

Dropping closes both sides of every forwarded connection with a reset (SO_LINGER 0), as a
network that vanished mid-stream looks to the client once it notices. Refusing closes the
listening socket and binds the same port again on `heal()`, so the URL stays the same.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

_ACCEPT_POLL = 0.05
_CHUNK = 64 * 1024


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class Partition:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1",
                 host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.mode = "open"  # open | refuse | stall
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._live: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self.accepted = 0  # connections accepted in any mode (the client's attempts)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _bind(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.settimeout(_ACCEPT_POLL)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def start(self) -> Partition:
        self._bind()
        self._thread = threading.Thread(target=self._accept_loop, name="partition", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                self._stopped.wait(_ACCEPT_POLL)
                continue
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.accepted += 1
                mode = self.mode
                self._live.add(conn)
            if mode == "stall":
                continue  # held open, never read or answered, until dropped or healed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._forget(conn)
                _reset(conn)
                continue
            upstream.settimeout(None)
            conn.settimeout(None)
            with self._lock:
                self._live.add(upstream)
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True,
                                 name="partition-pump").start()

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._live.discard(s)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._forget(src, dst)
            _reset(src)
            _reset(dst)

    # ------------------------------------------------------------------ faults
    def drop(self) -> None:
        """Reset every live connection (forwarded or stalled)."""
        with self._lock:
            live, self._live = list(self._live), set()
        for s in live:
            _reset(s)

    def refuse(self) -> None:
        """New connections are refused; live ones are dropped."""
        with self._lock:
            self.mode = "refuse"
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.drop()

    def stall(self) -> None:
        """New connections are accepted and never answered; live ones are dropped."""
        with self._lock:
            self.mode = "stall"
        if self._listener is None:
            self._bind()
        self.drop()

    def heal(self) -> None:
        """Back to forwarding; stalled connections are dropped so clients reconnect."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            was = self.mode
            self.mode = "open"
        if self._listener is None:
            self._bind()
        if was == "stall":
            self.drop()

    def partition(self, seconds: float, mode: str = "refuse") -> None:
        """Drop everything, then refuse (or stall) for `seconds`, then heal by itself."""
        self.stall() if mode == "stall" else self.refuse()
        timer = threading.Timer(seconds, self.heal)
        timer.daemon = True
        with self._lock:
            self._timer = timer
        timer.start()

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.drop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Partition:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
