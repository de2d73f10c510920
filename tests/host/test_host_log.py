"""Issue #13, class 11: the host keeps a log in the state folder, rotated, without secrets:
starts and restarts, rejected peers, dropped connections."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
from pathlib import Path

import pytest

from modal_offload.host import lifecycle
from modal_offload.host.log import log, log_path, setup, teardown
from tests.helpers import cli, spawn_cli
from tests.host.helpers import alive, host_pids, wait_for

SECRET = "sk-live-0123456789abcdef"


def _log(tmp_home: Path) -> str:
    path = log_path(lifecycle.config_key())
    assert path.is_relative_to(tmp_home / ".local" / "state" / "modal-offload")
    return path.read_text() if path.exists() else ""


def test_the_log_records_starts_restarts_and_drops_but_no_secret(
        host_env: dict[str, str], ws: Path, tmp_home: Path) -> None:
    out = cli("exec", "--", "sh", "-c", f"echo {SECRET} > /dev/null", cwd=ws,
              env={"MY_API_TOKEN": SECRET, "MODAL_OFFLOAD_FORWARD_ENV": "MY_API_TOKEN"})
    assert out.returncode == 0, out.stderr
    (pid,) = host_pids(tmp_home)
    assert wait_for(lambda: "started" in _log(tmp_home))
    os.kill(pid, signal.SIGKILL)  # a crash: the next command starts a new host
    proc = spawn_cli("exec", "-c", "echo started; sleep 30", cwd=ws)
    assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
    proc.kill()
    proc.wait()
    assert wait_for(lambda: "dropped connection" in _log(tmp_home))
    text = _log(tmp_home)
    assert f"restart: replacing host pid {pid}" in text
    assert re.search(r"the client of `(ba)?sh` vanished mid-command", text)
    assert text.count("started: version") == 2
    assert all(line[:4].isdigit() for line in text.splitlines())  # timestamped
    assert SECRET not in text and "MY_API_TOKEN" not in text
    assert (log_path(lifecycle.config_key()).stat().st_mode & 0o077) == 0


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another uid")
def test_a_rejected_peer_is_logged(host_env: dict[str, str], ws: Path, tmp_home: Path) -> None:
    assert cli("exec", "--", "true", cwd=ws).returncode == 0
    location = lifecycle.Location()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - another user
        code = 2
        try:
            # Another effective uid (what SO_PEERCRED reports) that can still reach the
            # 0600 socket: the file-system uid stays root's, as a real uid of 0 allows.
            import ctypes

            os.setresuid(0, 65534, 0)
            ctypes.CDLL(None).setfsuid(0)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with lifecycle._in_dir_of(location.socket) as address:
                s.connect(address)
            code = 0  # connected: the host must now refuse to talk
            s.sendall(b"\0\0\0\4junk")
            s.recv(10)
        except OSError:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert wait_for(lambda: "rejected peer: uid 65534" in _log(tmp_home))
    assert all(alive(p) for p in host_pids(tmp_home))  # the host serves on


def test_the_log_is_rotated(tmp_path: Path) -> None:
    path = tmp_path / "state" / "host-x.log"
    handler = setup(path, max_bytes=2000, backups=2)
    try:
        for i in range(200):
            log.log(logging.INFO, "line %d of a busy host", i)
    finally:
        teardown(handler)
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "host-x.log", "host-x.log.1", "host-x.log.2"]
    assert all(p.stat().st_size <= 2000 for p in path.parent.iterdir())
    assert "line 199" in path.read_text()
