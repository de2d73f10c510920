"""Is Modal reachable right now? One cheap check with a short deadline (issue 19).

Why a check of our own: the client's first connection is retried for about a minute before
it gives up (`create_channel_with_fallbacks`: 18 attempts, 10 s each, 63 s in total,
modal/_utils/grpc_utils.py:427-428), so with the network off a command waited 58 s and then
failed; a server that accepts and never answers costs each RPC its own attempt timeouts and
retries (`_retry_transient_errors`, grpc_utils.py:612-772). Here one attempt per URL, raced,
must get an HTTP/2 answer within `timeout` seconds.

What counts as an answer: the server's SETTINGS frame, the first thing every HTTP/2 server
sends once the client has sent its preface (RFC 9113 section 3.4), after TLS with ALPN `h2`
for https, exactly the transport the client opens (grpc_utils.py:370-398). A port that
refuses, a name that does not resolve, a TLS handshake that fails (a captive portal's
certificate) or silence until the deadline all mean "unreachable". The URLs are the ones the
client would dial (`credentials.server_url()`: MODAL_SERVER_URL, the profile, the default
pair), and an HTTP CONNECT proxy from the environment is used as the client uses it
(modal/_utils/proxy_support.py:26-42); a SOCKS proxy cannot be checked without
python-socks, so with one the check answers "reachable" and the client decides (unverified).

Standard library only, and no `import modal`: the whole point is to be fast.
"""

from __future__ import annotations

import os
import queue
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

# RFC 9113 section 3.4: the client preface, then an empty SETTINGS frame.
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS = 0x4
_PROXY_VARS = ("https_proxy", "http_proxy", "all_proxy")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _proxy_for(host: str, tls: bool) -> str | None:
    """The proxy the client would use for `host` (proxy_support.py:26-42), if any."""
    if not any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS):
        return None  # the common case, without importing urllib.request (~20 ms)
    if os.environ.get("MODAL_DISABLE_API_PROXY", "").strip().lower() in ("1", "true", "yes"):
        return None
    import urllib.request

    if urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get("https" if tls else "http") or proxies.get("all") or None


def _connect(host: str, port: int, tls: bool, deadline: float) -> socket.socket | None:
    """A TCP connection to host:port (through an HTTP proxy if one applies); None when a
    proxy we cannot speak is configured."""
    proxy = _proxy_for(host, tls)
    if proxy is None:
        return socket.create_connection((host, port), timeout=_remaining(deadline))
    parts = urlsplit(proxy)
    if parts.scheme != "http" or not parts.hostname:
        return None  # SOCKS: the client's python-socks decides
    sock = socket.create_connection((parts.hostname, parts.port or 80),
                                    timeout=_remaining(deadline))
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        sock.settimeout(_remaining(deadline))
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("the proxy closed the connection")
        head += data
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise ConnectionError(f"the proxy {parts.hostname} refused the tunnel "
                              f"({b' '.join(status[1:]).decode(errors='replace')})")
    return sock


def _tls_context() -> ssl.SSLContext:
    try:  # the client's grpclib verifies against certifi's bundle when it is installed
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    return context


def _check_one(url: str, deadline: float) -> str | None:
    """None when `url` answers as an HTTP/2 server before `deadline`, else why not."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_remaining(deadline))
        sock.connect(parts.path)
        where = parts.path
    elif parts.scheme in ("http", "https") and parts.hostname:
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        where = f"{parts.hostname}:{port}"
        maybe = _connect(parts.hostname, port, tls, deadline)
        if maybe is None:
            return None
        sock = maybe
        if tls:
            sock.settimeout(_remaining(deadline))
            sock = _tls_context().wrap_socket(sock, server_hostname=parts.hostname)
    else:
        return f"{url!r} is not a URL the Modal client can use"
    with sock:
        sock.settimeout(_remaining(deadline))
        sock.sendall(_PREFACE)
        head = b""
        while len(head) < 9:
            sock.settimeout(_remaining(deadline))
            data = sock.recv(9 - len(head))
            if not data:
                return f"{where} closed the connection without answering"
            head += data
    if head[3] != _SETTINGS:
        return f"{where} answered, but not as an HTTP/2 server"
    return None


def _why(url: str, exc: BaseException, timeout: float) -> str:
    where = urlsplit(url).netloc or url
    if isinstance(exc, socket.gaierror):
        return f"{where}: name not resolved"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"{where}: no answer within {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where}: TLS certificate not trusted (a captive portal?)"
    detail = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return f"{where}: {detail}"


def _attempt(url: str, deadline: float, timeout: float, out: queue.Queue[str | None]) -> None:
    try:
        out.put(_check_one(url, deadline))
    except Exception as exc:  # every failure is a reason, reported in one line
        out.put(_why(url, exc, timeout))


def unreachable_reason(server_url: str, timeout: float) -> str | None:
    """None when one of the comma-separated `server_url`s answers within `timeout` seconds;
    else one line saying why not (the first URL's failure).

    Each URL is tried in a daemon thread, so even a name lookup that hangs (getaddrinfo has
    no timeout) cannot hold the caller past the deadline.
    """
    urls = [u.strip() for u in server_url.split(",") if u.strip()]
    if not urls:
        return "no Modal server URL configured"
    deadline = time.monotonic() + timeout
    results: queue.Queue[str | None] = queue.Queue()
    for url in urls:
        threading.Thread(target=_attempt, args=(url, deadline, timeout, results),
                         name="modal-reach", daemon=True).start()
    reasons: list[str] = []
    while len(reasons) < len(urls):
        try:
            got = results.get(timeout=max(0.0, deadline - time.monotonic()) + 0.05)
        except queue.Empty:
            break
        if got is None:
            return None
        reasons.append(got)
    first = urlsplit(urls[0]).netloc or urls[0]
    return next((r for r in reasons if r.startswith(first)),
                reasons[0] if reasons else f"{first}: no answer within {timeout:g}s")
