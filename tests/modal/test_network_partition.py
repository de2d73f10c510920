"""Issue 19: a network blip in the middle of a remote command. The real CLI and client talk
to the emulator through testing/partition.py, a TCP proxy the test cuts: every live
connection is reset and new ones are refused for a while, as when Wi-Fi drops."""

from __future__ import annotations

import io
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from modal_offload.errors import EXEC_FAILURE_EXIT
from testing.modal_emulator import ModalEmulator
from testing.partition import Partition
from tests.helpers import cli, ledger, make_workspace, spawn_cli
from tests.host.helpers import wait_for

# Slow (the client's own retry timeouts / real pipx and uv installs): .ci/run runs this tier
# after `make test` so the default suite stays under 10 minutes.
pytestmark = pytest.mark.slow_tier

ENV = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5"}
# Longer than the client's own stdio retries (10 attempts from 10 ms doubling, about 10 s,
# modal/sandbox/_task_command_router_client.py:395-423), so our resume has to do the rest.
PARTITION_SECONDS = 12.0


@pytest.fixture
def net(modal_emulator: ModalEmulator) -> Iterator[Partition]:
    with Partition(modal_emulator.port) as proxy:
        modal_emulator.advertise(proxy.url)  # the task router's address too
        yield proxy


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


class Collector:
    """Reads a pipe to the end in a thread, so the test can watch output arrive."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        assert pipe is not None
        self.data = b""
        self._pipe = pipe
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert isinstance(self._pipe, io.BufferedReader)
        while chunk := self._pipe.read1(65536):
            self.data += chunk

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def start(ws: Path, net: Partition, script: str,
          extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Collector]:
    env = {**ENV, "MODAL_SERVER_URL": net.url, **(extra or {})}
    assert cli("exec", "--", "true", cwd=ws, env=env).returncode == 0  # a warm sandbox
    proc = spawn_cli("exec", "-c", script, cwd=ws, env=env)
    return proc, Collector(proc.stdout)


def test_a_cut_mid_command_resumes_every_line_once_with_the_exit_code(
        net: Partition, ws: Path) -> None:
    lines = 60  # 6 s of output at 10 lines a second; the cut starts after the 5th
    script = (f'i=1; while [ $i -le {lines} ]; do echo "line $i"; i=$((i+1)); sleep 0.1; '
              'done; exit 7')
    proc, out = start(ws, net, script)
    assert wait_for(lambda: b"line 5\n" in out.data, timeout=60)
    net.partition(PARTITION_SECONDS)
    code = proc.wait(timeout=120)
    out.join(10)
    expected = b"".join(f"line {i}\n".encode() for i in range(1, lines + 1))
    assert out.data == expected  # byte-exact: nothing lost, nothing repeated, in order
    assert code == 7, proc.stderr.read() if proc.stderr else b""
    assert net.accepted > 2  # the client really reconnected through the proxy


def sleeping(marker: str) -> bool:
    """Whether a `sleep <marker>` runs on this machine (the emulator's sandboxes in host mode
    are processes here)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == f"sleep\0{marker}\0".encode():
                return True
        except OSError:
            continue
    return False


def test_a_cut_longer_than_the_grace_gives_up_in_one_line_and_stops_the_command(
        net: Partition, ws: Path, tmp_home: Path) -> None:
    extra = {"MODAL_OFFLOAD_RESUME_GRACE": "1"}
    proc, out = start(ws, net, "echo started; sleep 61", extra)
    assert wait_for(lambda: b"started\n" in out.data, timeout=60)
    net.partition(120)
    begun = time.monotonic()
    code = proc.wait(timeout=120)
    err = proc.stderr.read() if proc.stderr else b""
    assert code == EXEC_FAILURE_EXIT, err
    assert err.count(b"\n") == 1 and b"lost the connection to Modal for more than 1s" in err
    assert b"(sandbox sb-" in err and b"session status" in err
    assert time.monotonic() - begun < 60  # gave up long before the partition healed
    assert ledger(tmp_home)["used_min"] > 0  # the time it ran was charged
    # Modal could not be told while the network was down; the next contact stops it.
    assert sleeping("61")
    net.heal()
    env = {**ENV, "MODAL_SERVER_URL": net.url, **extra}
    assert cli("exec", "--", "true", cwd=ws, env=env, timeout=120).returncode == 0
    assert wait_for(lambda: not sleeping("61"), timeout=15)


def test_streams_reopen_at_their_offset_after_the_clients_retries_run_out(
        modal_emulator: ModalEmulator, ws: Path) -> None:
    """The client gives a failing stdio read 10 retries (about 10 s); a flakier link than
    that is ridden out by reopening the stream where it stopped (ModalProcess._chunks)."""
    env = {**ENV}
    assert cli("exec", "--", "true", cwd=ws, env=env).returncode == 0
    modal_emulator.fail_next("TaskExecStdioRead", times=30)  # both streams, 15 each
    script = 'for i in 1 2 3 4 5; do echo "out $i"; echo "err $i" >&2; done; exit 5'
    out = cli("exec", "-c", script, cwd=ws, env=env, timeout=120)
    assert out.returncode == 5, out.stderr
    assert out.stdout == b"".join(f"out {i}\n".encode() for i in range(1, 6))
    assert out.stderr == b"".join(f"err {i}\n".encode() for i in range(1, 6))
    # More reads than the client alone would make (1 + 10 retries per stream).
    assert modal_emulator.call_counts()["TaskExecStdioRead"] > 2 * 11
