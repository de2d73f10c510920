"""The thin client: `modal-offload exec` through the session host, in one round trip.

Imports only the standard library (and this package's light host modules): no rich,
pathspec, gateway or modal. It sends argv, cwd, the environment and its own stdin,
stdout and stderr (SCM_RIGHTS) to the host, so output goes straight from the host to the
terminal or pipe and nothing is buffered here. It forwards SIGINT/SIGTERM/SIGHUP and exits
with the command's code. Configuration files are read by the host, not here.

`try_exec` returns None to mean "not handled here": the caller then runs the ordinary
in-process path (help, argument errors, host disabled or unavailable).
"""

from __future__ import annotations

import _signal  # not `signal`: no enum conversion on the client's path
import os

from ..errors import EXEC_FAILURE_EXIT  # import-free, and cli.py has loaded it already
from . import lifecycle, protocol

TYPE_CHECKING = False  # see protocol.py: typing/contextlib stay off the client's path
if TYPE_CHECKING:
    import _socket
    from collections.abc import Mapping, Sequence
    from typing import Any

_FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
_TRUE = ("1", "true", "yes", "on")


def notice(message: str) -> None:
    try:  # noqa: SIM105 - no contextlib on this path
        os.write(2, f"modal-offload: {message}\n".encode(errors="replace"))
    except OSError:
        pass


def host_enabled(environ: Mapping[str, str]) -> bool:
    """On unless MODAL_OFFLOAD_HOST says otherwise; an invalid value goes the slow path,
    whose config loader explains it."""
    value = environ.get("MODAL_OFFLOAD_HOST")
    return value is None or value.strip().lower() in _TRUE


def parse_exec_args(args: Sequence[str]
                    ) -> tuple[str | None, bool | None, str | None, list[str]] | None:
    """(backend, sync_back, shell, command) as `exec`'s argparse would read them, or None
    for anything unusual (help, unknown options), which argparse then handles."""
    backend: str | None = None
    sync_back: bool | None = None
    shell: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return backend, sync_back, shell, list(args[i + 1:])
        if arg in ("--sync-back", "--no-sync-back"):
            wanted = arg == "--sync-back"
            if sync_back is not None and sync_back != wanted:
                return None  # argparse: mutually exclusive
            sync_back = wanted
        elif arg in ("--backend", "-c", "--cmd"):
            if i + 1 >= len(args):
                return None
            i += 1
            if arg == "--backend":
                backend = args[i]
            else:
                shell = args[i]
        elif arg.startswith("--backend="):
            backend = arg.partition("=")[2]
        elif arg.startswith("--cmd="):
            shell = arg.partition("=")[2]
        elif arg.startswith("-c") and not arg.startswith("--"):
            shell = arg[2:]
        elif arg.startswith("-"):
            return None
        else:
            return backend, sync_back, shell, list(args[i:])
        i += 1
    return backend, sync_back, shell, []


def try_exec(args: Sequence[str]) -> int | None:
    if not host_enabled(os.environ):
        return None
    parsed = parse_exec_args(args)
    if parsed is None:
        return None
    backend, sync_back, shell, command = parsed
    if (shell is None) == (not command):
        return None  # neither or both: exec's own message
    if os.environ.get("MODAL_OFFLOAD_REMOTE") == "1":
        return _run_here(shell, command)  # already inside a session: never nest
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    message = {"op": "exec", "fingerprint": protocol.fingerprint(), "argv": ["--", *command],
               "shell": shell, "cwd": cwd, "env": dict(os.environ), "backend": backend,
               "sync_back": sync_back}
    try:
        return _through_host(message, shell, command)
    except lifecycle.HostUnavailable as exc:
        notice(f"session host unavailable ({exc}); running in-process")
        return None


def _open_std_fds() -> list[int]:
    out = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            continue
        out.append(fd)
    return out


def _through_host(message: dict[str, Any], shell: str | None, command: list[str]) -> int | None:
    location = lifecycle.Location()
    std = _open_std_fds()
    message["std"] = std
    for _attempt in range(3):
        sock = lifecycle.connect_or_start(location)
        try:
            protocol.send(sock, message, std)
            got = protocol.recv(sock)
        except (OSError, protocol.ProtocolError):
            got = None
        if got is None:  # the host was exiting as we connected: start another
            sock.close()
            continue
        reply, _ = got
        if reply.get("op") == "mismatch":  # it runs other code: it retires, we restart it
            sock.close()
            lifecycle.wait_gone(location)
            continue
        if reply.get("op") != "accepted":
            sock.close()
            raise lifecycle.HostUnavailable(f"unexpected answer {reply.get('op')!r}")
        return _converse(sock, shell, command)
    raise lifecycle.HostUnavailable("the host kept restarting")


def _converse(sock: _socket.socket, shell: str | None, command: list[str]) -> int | None:
    def forward(sig: int, _frame: object) -> None:
        try:  # noqa: SIM105 - no contextlib on this path
            protocol.send(sock, {"op": "signal", "sig": sig})
        except OSError:
            pass

    previous = {sig: _signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        try:
            got = protocol.recv(sock)
        except (OSError, protocol.ProtocolError):
            got = None
    finally:
        for sig, old in previous.items():
            _signal.signal(sig, old)
        sock.close()
    if got is None:
        notice("the session host stopped in the middle of the command; its outcome is "
               "unknown and nothing was synced back (`modal-offload host status`)")
        return EXEC_FAILURE_EXIT
    reply, _ = got
    op = reply.get("op")
    if op == "done":
        for text in reply.get("notices", []):
            notice(str(text))
        return int(reply["exit"])
    if op == "local":
        if reply.get("notice"):
            notice(str(reply["notice"]))
        return _run_here(shell, command)
    if op == "error":
        notice(str(reply.get("message", "the session host failed")))
        return int(reply.get("exit", EXEC_FAILURE_EXIT))
    if op == "inprocess":
        return None
    notice(f"unexpected answer from the session host: {op!r}")
    return EXEC_FAILURE_EXIT


def _run_here(shell: str | None, command: list[str]) -> int:
    from ..local_run import exec_here, shell_argv

    return exec_here(shell_argv(shell) if shell is not None else command)


def request(message: dict[str, Any]) -> dict[str, Any] | None:
    """One request to a running host (status, stop); None when none is running."""
    sock = lifecycle.connect(lifecycle.Location())
    if sock is None:
        return None
    try:
        protocol.send(sock, message)
        got = protocol.recv(sock)
    finally:
        sock.close()
    return got[0] if got else None
