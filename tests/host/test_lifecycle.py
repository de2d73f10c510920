"""Starting, replacing and refusing: version mismatch, stale sockets, permissions, the
in-process fallback, and the thin client's light imports."""

from __future__ import annotations

import os
import pty
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from modal_offload import paths
from modal_offload.host import lifecycle, protocol
from modal_offload.host.server import Host, peer_allowed, peer_uid
from tests.helpers import cli
from tests.host.helpers import host_pids


def test_version_mismatch_restarts_the_host(host_env: dict[str, str], ws: Path,
                                            tmp_home: Path) -> None:
    old = Host(lifecycle.Location(), 60, fingerprint="code-from-last-week")
    thread = threading.Thread(target=old.serve, kwargs={"install_signals": False})
    thread.start()
    try:
        out = cli("exec", "--", "cat", "data/input.txt", cwd=ws)
    finally:
        old.retire()
        thread.join(10)
    assert out.returncode == 0 and out.stdout == b"hello\n", out.stderr
    assert out.stderr == b""
    assert not thread.is_alive()  # the old host retired as soon as it saw newer code
    (pid,) = host_pids(tmp_home)
    assert pid != os.getpid()


def test_stale_socket_is_replaced(host_env: dict[str, str], ws: Path) -> None:
    location = lifecycle.Location()
    location.ensure_private_dir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lifecycle.bind(dead, location.socket)
    dead.close()  # a socket file nobody listens on: a host that died
    assert lifecycle.connect(location) is None
    out = cli("exec", "--", "true", cwd=ws)
    assert out.returncode == 0 and out.stderr == b""


def test_host_that_cannot_start_falls_back_in_process(host_env: dict[str, str], ws: Path,
                                                      tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    out = cli("exec", "--", "cat", "data/input.txt", cwd=ws,
              env={"MODAL_OFFLOAD_RUNTIME_DIR": str(blocker / "run")})
    assert out.returncode == 0 and out.stdout == b"hello\n"
    assert out.stderr.count(b"\n") == 1 and b"running in-process" in out.stderr


def test_permissions_on_disk(host_env: dict[str, str], ws: Path) -> None:
    assert cli("exec", "--", "true", cwd=ws).returncode == 0
    location = lifecycle.Location()
    assert stat.S_IMODE(os.stat(location.dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(location.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(location.pidfile).st_mode) == 0o600


def test_peer_uid_check() -> None:
    assert peer_allowed(os.getuid())
    assert not peer_allowed(os.getuid() + 1)
    assert not peer_allowed(0, own_uid=1000)  # not even root
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert peer_uid(a) == os.getuid()


def test_a_shared_runtime_dir_is_tightened(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    monkeypatch.setenv("MODAL_OFFLOAD_RUNTIME_DIR", str(folder))
    lifecycle.Location().ensure_private_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # tightened, it is ours


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give the folder to another user")
def test_a_runtime_dir_owned_by_another_user_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("MODAL_OFFLOAD_RUNTIME_DIR", str(folder))
    os.chown(folder, 65534, 65534)
    with pytest.raises(lifecycle.HostUnavailable, match="not a folder owned by this user"):
        lifecycle.Location().ensure_private_dir()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
def test_another_user_cannot_connect(host_env: dict[str, str], ws: Path) -> None:
    assert cli("exec", "--", "true", cwd=ws).returncode == 0
    path = lifecycle.Location().socket
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with lifecycle._in_dir_of(path) as address:
                s.connect(address)
            code = 0
        except PermissionError:
            code = 1
        except OSError:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1


def test_fd_passing_keeps_the_terminal() -> None:
    primary, secondary = pty.openpty()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        protocol.send(a, {"op": "exec", "std": [1]}, [secondary])
        got = protocol.recv(b, with_fds=True)
    assert got is not None
    message, fds = got
    assert message == {"op": "exec", "std": [1]} and len(fds) == 1
    assert os.isatty(fds[0])
    os.write(fds[0], b"through the host\n")
    assert os.read(primary, 100).replace(b"\r\n", b"\n") == b"through the host\n"
    for fd in (fds[0], primary, secondary):
        os.close(fd)


@pytest.mark.parametrize("env", [
    {}, {"XDG_RUNTIME_DIR": "/nonexistent"}, {"MODAL_OFFLOAD_RUNTIME_DIR": "~/rt"}])
def test_client_runtime_dir_mirrors_paths(env: dict[str, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert lifecycle.runtime_dir() == str(paths.runtime_dir())


def test_thin_client_imports_nothing_heavy() -> None:
    code = ("import sys, modal_offload.cli, modal_offload.host.client\n"
            "heavy = {'rich', 'pathspec', 'modal', 'platformdirs', 'filelock', 'numpy',"
            " 'pathlib', 'modal_offload.gateway', 'modal_offload.config',"
            " 'modal_offload.sync', 'modal_offload.backends'}\n"
            "print([m for m in sys.modules if m.split('.')[0] in heavy"
            " or '.'.join(m.split('.')[:2]) in heavy])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout == b"[]\n"


def test_doctor_row(host_env: dict[str, str], ws: Path) -> None:
    from modal_offload.host.health import host_check

    assert host_check(False)[0] == "ok"
    assert host_check(True)[1].startswith("not running")
    assert cli("exec", "--", "true", cwd=ws).returncode == 0
    status, detail, _ = host_check(True)
    assert status == "ok" and detail.startswith("running, pid")
    doctor = cli("doctor", "--json", cwd=ws)
    assert b"session host" in doctor.stdout
