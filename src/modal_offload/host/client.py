"""The thin client: `modal-offload exec` through the session host, in one round trip.

Imports only the standard library (and this package's light host modules): no rich,
pathspec, gateway or modal. It sends argv, cwd, the environment and its own stdin,
stdout and stderr (SCM_RIGHTS) to the host, so output goes straight from the host to the
terminal or pipe and nothing is buffered here. It forwards SIGINT/SIGTERM/SIGHUP and exits
with the command's code. Configuration files are read by the host, not here. At a terminal
(issue 16) it asks for a remote terminal of its window's size and puts its own terminal in
raw mode for the duration (terminal.RawMode): the host never changes the user's terminal.

`try_exec` returns None to mean "not handled here": the caller then runs the ordinary
in-process path (host disabled or unavailable). Arguments are parsed by `exec_args.parse`.
"""

from __future__ import annotations

import _signal  # not `signal`: no enum conversion on the client's path
import os

from .. import terminal
from ..errors import EXEC_FAILURE_EXIT  # import-free, and cli.py has loaded it already
from . import host_enabled, lifecycle, protocol

TYPE_CHECKING = False  # see protocol.py: typing/contextlib stay off the client's path
if TYPE_CHECKING:
    import _socket
    from typing import Any

    from ..exec_args import ExecArgs

_FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)


def notice(message: str) -> None:
    try:  # noqa: SIM105 - no contextlib on this path
        os.write(2, f"modal-offload: {message}\n".encode(errors="replace"))
    except OSError:
        pass


def try_exec(args: ExecArgs) -> int | None:
    if not host_enabled(os.environ):
        return None
    shell, command = args.shell, args.command
    if os.environ.get("MODAL_OFFLOAD_REMOTE") == "1":
        return _run_here(shell, command)  # already inside a session: never nest
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    pty = terminal.pty_request(os.environ, 1, 0) if terminal.wants_pty(args.tty) else None
    message = {"op": "exec", "fingerprint": protocol.fingerprint(), "argv": ["--", *command],
               "shell": shell, "cwd": cwd, "env": dict(os.environ), "backend": args.backend,
               "sync_back": args.sync_back, "pty": pty, "gpu": args.gpu}
    try:
        return _through_host(message, shell, command, raw=pty is not None and terminal.isatty(0))
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


def _through_host(message: dict[str, Any], shell: str | None, command: list[str],
                  raw: bool = False) -> int | None:
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
        # Raw mode is the client's job, never the host's: set and restored here, around the
        # conversation only, so a local fallback (`_run_here`) gets the terminal as it was.
        if not raw:
            return _converse(sock, shell, command)
        with terminal.RawMode(0):
            outcome = _await_outcome(sock, resizes=True)
        return _outcome(outcome, shell, command)
    raise lifecycle.HostUnavailable("the host kept restarting")


def _converse(sock: _socket.socket, shell: str | None, command: list[str]) -> int | None:
    return _outcome(_await_outcome(sock), shell, command)


def _await_outcome(sock: _socket.socket, resizes: bool = False) -> dict[str, Any] | None:
    """The host's final reply (None if it vanished), forwarding our signals meanwhile, and
    with `resizes` (a remote terminal) our window's new sizes."""

    def forward(sig: int, _frame: object) -> None:
        if sig == _signal.SIGWINCH:
            rows, cols = terminal.window_size(1, 0)
            message: dict[str, Any] = {"op": "resize", "rows": rows, "cols": cols}
        else:
            message = {"op": "signal", "sig": sig}
        try:  # noqa: SIM105 - no contextlib on this path
            protocol.send(sock, message)
        except OSError:
            pass

    wanted = (*_FORWARDED, _signal.SIGWINCH) if resizes else _FORWARDED
    previous = {sig: _signal.signal(sig, forward) for sig in wanted}
    try:
        try:
            got = protocol.recv(sock)
        except (OSError, protocol.ProtocolError):
            got = None
    finally:
        for sig, old in previous.items():
            _signal.signal(sig, old)
        sock.close()
    return None if got is None else got[0]


def _outcome(reply: dict[str, Any] | None, shell: str | None, command: list[str]) -> int | None:
    if reply is None:
        notice("the session host stopped in the middle of the command; its outcome is "
               "unknown and nothing was synced back (`modal-offload host status`)")
        return EXEC_FAILURE_EXIT
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
