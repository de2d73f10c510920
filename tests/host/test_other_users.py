"""Issue #13, class 1: another local user must never receive our commands.

The attacker is real: a forked child that switches to another uid (as root can), creates
`/tmp/modal-offload-<our uid>` (the runtime folder when XDG_RUNTIME_DIR is unset; in a
private mount namespace with its own /tmp) and listens on the socket name our client
computes. The client must refuse it, run the command
in-process with one notice, and never send it argv, environment or file descriptors.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from modal_offload.host import lifecycle
from tests.helpers import REPO, cli, private_mounts_work

NOBODY = 65534
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another uid")


class FakeHost:
    """A child running as NOBODY that owns `folder` and listens on `sock_name` in it; what
    it receives comes back to the test through a pipe (no file the other uid could not
    write, which would make the test pass for the wrong reason)."""

    def __init__(self, folder: str, sock_name: str, mode: int) -> None:
        ready_r, ready_w = os.pipe()
        self._seen_r, seen_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the attacker
            try:
                os.close(ready_r)
                os.close(self._seen_r)
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                os.makedirs(folder, mode=0o700, exist_ok=True)
                with contextlib.suppress(PermissionError):  # a folder the test made
                    os.chmod(folder, mode)
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(os.path.join(folder, sock_name))
                os.chmod(os.path.join(folder, sock_name), 0o777)
                listener.listen(8)
                os.write(ready_w, b"x")
                while True:
                    conn, _ = listener.accept()
                    conn.settimeout(2)
                    data, fds = b"", 0
                    with contextlib.suppress(OSError):
                        while True:
                            msg, anc, _f, _a = conn.recvmsg(1 << 16, socket.CMSG_SPACE(64))
                            if not msg:
                                break
                            data, fds = data + msg, fds + len(anc)
                    os.write(seen_w, f"connection: {len(data)} bytes, {fds} fds\n".encode()
                             + data + b"\n")
                    conn.close()
            finally:
                os._exit(0)
        os.close(ready_w)
        os.close(seen_w)
        ok = os.read(ready_r, 1) == b"x"
        os.close(ready_r)
        assert ok, "the fake host could not start"

    def stop(self) -> bytes:
        """Stop the fake host; everything it received."""
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        chunks = []
        while chunk := os.read(self._seen_r, 1 << 16):
            chunks.append(chunk)
        os.close(self._seen_r)
        return b"".join(chunks)


# Runs in a private mount namespace whose /tmp is an overlay of the real one: the real
# /tmp/modal-offload-<uid> of this machine (maybe in use) is never touched.
ATTACK = r"""
import json, os, subprocess, sys
for cmd in ("mount -t tmpfs tmpfs /mnt", "mkdir /mnt/upper /mnt/work",
            "chmod 1777 /mnt/upper", "mount -t overlay overlay"
            " -o lowerdir=/tmp,upperdir=/mnt/upper,workdir=/mnt/work /tmp"):
    subprocess.run(cmd.split(), check=True)
import shutil, tempfile
from modal_offload.host import lifecycle
from tests.host.test_other_users import FakeHost
mode, scratch = int(sys.argv[1]), tempfile.mkdtemp(dir="/tmp")
home, ws = scratch + "/home", scratch + "/ws"
os.makedirs(ws + "/data")
open(ws + "/.modal-offload.toml", "w").close()
with open(ws + "/data/input.txt", "w") as fh:
    fh.write("hello\n")
env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
       "HOME": home, "MODAL_OFFLOAD_HOST": "1", "MODAL_OFFLOAD_BACKEND": "local",
       "MODAL_TOKEN_SECRET": "as-very-secret"}  # no XDG_RUNTIME_DIR: cron, su, macOS
folder = f"/tmp/modal-offload-{os.getuid()}"
assert lifecycle.runtime_dir(env) == folder
shutil.rmtree(folder, ignore_errors=True)  # in this namespace's overlay only
fake = FakeHost(folder, os.path.basename(lifecycle.Location(env).socket), mode)
result = {}
try:
    out = subprocess.run([sys.executable, "-m", "modal_offload", "exec", "--", "cat",
                          "data/input.txt"], cwd=ws, env=env, capture_output=True, timeout=20)
    result = {"rc": out.returncode, "out": out.stdout.decode(), "err": out.stderr.decode()}
except subprocess.TimeoutExpired:
    pass  # a client that talked to the fake host waits for it forever
finally:
    result["seen"] = fake.stop().decode(errors="replace")
print(json.dumps(result))
"""


@pytest.mark.skipif(not private_mounts_work(),
                    reason="needs root, unshare(1) and mount rights for a private /tmp")
@pytest.mark.parametrize("mode", [0o700, 0o777], ids=["private-folder", "open-folder"])
def test_a_fake_host_of_another_user_gets_nothing(mode: int) -> None:
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                           "-c", ATTACK, str(mode)], cwd=REPO, capture_output=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [os.environ.get("PYTHONPATH", ""), str(REPO)]).strip(os.pathsep)},
                          timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    # The other user got nothing at all: no connection, no argv, no environment, no fds.
    assert result["seen"] == "", result["seen"][:400]
    # The command still ran, in-process, with one line saying why.
    assert "rc" in result, "the client hung talking to another user's host"
    assert result["rc"] == 0 and result["out"] == "hello\n", result["err"]
    assert result["err"].count("\n") == 1
    assert "running in-process" in result["err"]
    assert "not a folder owned by this user" in result["err"]


@needs_root
def test_a_socket_served_by_another_uid_is_refused_after_connecting(
        host_env: dict[str, str], ws: Path, tmp_path: Path) -> None:
    """Even inside a folder of ours (say it was swapped in between the check and the
    connect), the listener's uid is asked of the kernel before anything is sent."""
    location = lifecycle.Location()
    location.ensure_private_dir()
    staging = Path(tempfile.mkdtemp(prefix="mo-test-attacker-", dir="/tmp"))
    staging.chmod(0o777)
    name = os.path.basename(location.socket)
    fake = FakeHost(str(staging), name, 0o777)
    try:
        os.rename(staging / name, location.socket)  # the attacker's listener, in our folder
        out = cli("exec", "--", "cat", "data/input.txt", cwd=ws)
    finally:
        seen = fake.stop()
        shutil.rmtree(staging, ignore_errors=True)
    assert out.returncode == 0 and out.stdout == b"hello\n", out.stderr
    assert out.stderr.count(b"\n") == 1 and b"served by uid 65534" in out.stderr
    # A listener sees that someone connected; nothing at all was sent on the connection.
    assert seen in (b"", b"connection: 0 bytes, 0 fds\n\n")


def test_a_symlinked_runtime_folder_is_refused(host_env: dict[str, str], ws: Path,
                                               tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    link = tmp_path / "run"
    link.symlink_to(elsewhere)
    out = cli("exec", "--", "cat", "data/input.txt", cwd=ws,
              env={"MODAL_OFFLOAD_RUNTIME_DIR": str(link)})
    assert out.returncode == 0 and out.stdout == b"hello\n"
    assert out.stderr.count(b"\n") == 1 and b"is a symlink" in out.stderr
    assert list(elsewhere.iterdir()) == []  # no socket, no lock, no host started there


def test_a_runtime_folder_others_can_write_is_refused(host_env: dict[str, str], ws: Path,
                                                      tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o1777)
    out = cli("exec", "--", "true", cwd=ws, env={"MODAL_OFFLOAD_RUNTIME_DIR": str(folder)})
    assert out.returncode == 0
    assert out.stderr.count(b"\n") == 1 and b"writable by other users" in out.stderr
    assert list(folder.iterdir()) == []


@needs_root
def test_locks_and_ledgers_in_tmp_are_never_another_users(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A shared folder like /tmp: a planted symlink is not followed, a file of another
    user is refused, for the ledger and for every lock."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    ledger = shared / "usage.json"
    (shared / "usage.json.lock").symlink_to(victim)
    from modal_offload.budget import Ledger
    from modal_offload.errors import CorruptLedger, OffloadError
    from modal_offload.fileio import exclusive
    from modal_offload.private import NotPrivate, open_owned

    with pytest.raises(OffloadError, match="symlink"):
        Ledger(ledger).charge(1.0, "exec")
    assert victim.read_text() == "precious\n"
    (shared / "usage.json.lock").unlink()
    ledger.write_text('{"day": "2026-01-01", "used_min": 0}')
    os.chown(ledger, NOBODY, NOBODY)
    with pytest.raises(CorruptLedger, match="belongs to uid 65534"):
        Ledger(ledger).snapshot()
    foreign_lock = shared / "other.lock"
    foreign_lock.touch()
    os.chown(foreign_lock, NOBODY, NOBODY)
    with pytest.raises(OffloadError, match="belongs to uid 65534"), exclusive(shared / "other"):
        pass
    with pytest.raises(NotPrivate):
        open_owned(str(foreign_lock), os.O_RDONLY)


def test_the_runtime_folder_and_host_files_are_private(host_env: dict[str, str],
                                                       ws: Path) -> None:
    assert cli("exec", "--", "true", cwd=ws).returncode == 0
    location = lifecycle.Location()
    for path in (location.dir, location.socket, location.start_lock, location.log):
        st = os.lstat(path)
        assert st.st_uid == os.getuid() and not stat.S_ISLNK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, path
