"""Ownership checks for every folder, lock, state file and socket we use (issue #13).

Another local user can compute the names we use under /tmp (the runtime folder when
XDG_RUNTIME_DIR is unset, a ledger or lock a user pointed there) and create them first:
a folder with their socket inside, a symlink to a file of ours, a file they own. So:
- a folder we keep private must be a real folder (lstat: not a symlink), owned by us and
  writable by nobody else;
- a file we lock or read state from is opened without following a symlink when its folder
  is shared (others may write in it: /tmp), and must be owned by us;
- a socket's peer must run as us (SO_PEERCRED / getpeereid, asked of the kernel).

Stdlib only and cheap: the thin client (host/client.py) checks its folder and its peer on
every routed command.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

TYPE_CHECKING = False  # typing costs ~3 ms on the thin client's path
if TYPE_CHECKING:
    import _socket


class NotPrivate(Exception):
    """A folder, file or peer is not this user's alone; the message says which and why."""


def verify_private_dir(path: str) -> bool:
    """False when `path` does not exist; True when it is a real folder (not a symlink)
    owned by this user that no one else can write in; else NotPrivate.

    A folder of ours that others may only read or enter is tightened to 0700: nobody else
    could have put anything in it.
    """
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise NotPrivate(f"cannot check {path} ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise NotPrivate(f"{path} is a symlink, not a folder of this user")
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise NotPrivate(f"{path} is not a folder owned by this user (owner uid {st.st_uid})")
    if st.st_mode & 0o022:
        raise NotPrivate(f"{path} is writable by other users (mode {st.st_mode & 0o777:o}); "
                         "remove it")
    if st.st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError:
            raise NotPrivate(f"{path} is not private (mode {st.st_mode & 0o777:o})") from None
    return True


def make_private_dir(path: str) -> None:
    """Create `path` 0700 (and missing parents) if absent, then verify it."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass  # a symlink or a file in its place: the check below names it
    except OSError as exc:
        raise NotPrivate(f"cannot create {path} ({exc.strerror})") from None
    if not verify_private_dir(path):
        raise NotPrivate(f"{path} vanished while it was being created")


def shared_folder(folder: str) -> bool:
    """True when others may create entries in `folder` (a sticky /tmp, a group folder)
    or it is not ours: a symlink in it may be a trap, not the user's own choice."""
    try:
        st = os.stat(folder)
    except OSError:
        return False  # missing: the open that follows reports it
    return bool(st.st_mode & 0o022) or st.st_uid != os.getuid()


def open_owned(path: str, flags: int, mode: int = 0o600) -> int:
    """os.open for a lock or state file: never through a symlink placed in a shared folder,
    and never a file another user owns (NotPrivate). A symlink in a folder of ours (a
    dotfile manager's link to a ledger) is followed; its target must be ours too."""
    if shared_folder(os.path.dirname(os.path.abspath(path))):
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise NotPrivate(f"{path} is a symlink in a folder other users can write "
                             "in; remove it") from None
        raise
    owner = os.fstat(fd).st_uid
    if owner != os.getuid():
        os.close(fd)
        raise NotPrivate(f"{path} belongs to uid {owner}, not this user; remove it")
    return fd


def peer_uid(sock: _socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket, from the kernel.

    Linux: SO_PEERCRED gives struct ucred {pid, uid, gid}. macOS/BSD: LOCAL_PEERCRED
    (SOL_LOCAL=0, option 1) gives struct xucred {u_int version; uid_t uid; ...}, which is
    what getpeereid(3) reads there (unverified: no macOS here to test on).
    """
    return peer_credentials(sock)[1]


def peer_credentials(sock: _socket.socket) -> tuple[int, int]:
    """(pid, uid) of the peer; pid is -1 where the platform does not say."""
    import _socket

    if hasattr(_socket, "SO_PEERCRED"):
        creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        return (int.from_bytes(creds[0:4], sys.byteorder, signed=True),
                int.from_bytes(creds[4:8], sys.byteorder))
    creds = sock.getsockopt(0, 1, 76)
    return -1, int.from_bytes(creds[4:8], sys.byteorder)


def peer_allowed(uid: int, own_uid: int | None = None) -> bool:
    """Only our own uid, on either side of the socket: not even root may borrow it."""
    return uid == (os.getuid() if own_uid is None else own_uid)
