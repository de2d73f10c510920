"""Issue 19: the session host's circuit breaker, end to end. The host talks to the emulator
through testing/partition.py; the test makes Modal unreachable and reachable again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.modal_emulator import ModalEmulator
from testing.partition import Partition
from tests.helpers import cli, make_workspace
from tests.host.helpers import stop_hosts, wait_for

# Where it ran: "1" remotely (the remote's marker), "here" locally.
WHERE = "echo ${MODAL_OFFLOAD_REMOTE:-here}"


@pytest.fixture
def net(modal_emulator: ModalEmulator, tmp_home: Path) -> Iterator[Partition]:
    with Partition(modal_emulator.port) as proxy:
        modal_emulator.advertise(proxy.url)
        yield proxy
        stop_hosts(tmp_home)


@pytest.fixture
def env(net: Partition) -> dict[str, str]:
    return {"MODAL_OFFLOAD_HOST": "1", "MODAL_OFFLOAD_BACKEND": "modal",
            "MODAL_SERVER_URL": net.url, "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5",
            "MODAL_OFFLOAD_REACH_TIMEOUT": "1", "MODAL_OFFLOAD_OFFLINE_SECONDS": "120",
            "MODAL_OFFLOAD_HOST_IDLE_SECONDS": "120"}


def test_breaker_answers_offline_at_once_and_closes_when_modal_answers(
        net: Partition, env: dict[str, str], tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    net.stall()  # accepts, never answers: each check would wait its full 1 s deadline
    first = cli("exec", "-c", WHERE, cwd=ws, env=env)
    assert (first.returncode, first.stdout) == (0, b"here\n"), first.stderr
    assert b"running locally: Modal is unreachable" in first.stderr
    begun = time.monotonic()
    for _ in range(10):  # the breaker is open: no check, no wait, no repeated notice
        out = cli("exec", "-c", WHERE, cwd=ws, env=env)
        assert (out.returncode, out.stdout, out.stderr) == (0, b"here\n", b"")
    # Ten checks would take at least 10 s; the open breaker answers without one.
    assert time.monotonic() - begun < 10 * 1.0
    status = cli("host", "status", env=env).stdout.decode()
    assert "Modal: offline since" in status and "no answer within 1s" in status
    doctor = cli("doctor", cwd=ws, env=env).stdout.decode()
    assert "Modal offline" in doctor

    net.heal()  # the background probe notices; no command needed
    assert wait_for(lambda: "Modal: reachable" in cli("host", "status", env=env).stdout.decode(),
                    timeout=30)
    back = cli("exec", "-c", WHERE, cwd=ws, env=env, timeout=120)
    assert (back.returncode, back.stdout) == (0, b"1\n"), back.stderr
    assert back.stderr == b"modal-offload: Modal is reachable again: commands run remotely\n"
    again = cli("exec", "-c", WHERE, cwd=ws, env=env, timeout=120)
    assert (again.stdout, again.stderr) == (b"1\n", b"")  # said once


def test_a_drop_right_after_a_remote_command_runs_the_next_one_here(
        net: Partition, env: dict[str, str], tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    assert cli("exec", "-c", WHERE, cwd=ws, env=env, timeout=120).stdout == b"1\n"
    net.refuse()
    # Right after a remote command the host skips the check (breaker.FRESH_SECONDS): the
    # command meets the refusal itself, before it started remotely, and runs here.
    begun = time.monotonic()
    out = cli("exec", "-c", WHERE, cwd=ws, env=env, timeout=120)
    assert (out.returncode, out.stdout) == (0, b"here\n"), out.stderr
    assert b"running locally: cannot reach Modal" in out.stderr
    assert time.monotonic() - begun < 30  # the client's own retries, not a minute
    assert "Modal: offline since" in cli("host", "status", env=env).stdout.decode()
