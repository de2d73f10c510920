"""The Modal backend against the emulator's stricter service semantics (issue 11): what the
product does where the emulator used to be more lenient than Modal."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock
from grpclib import Status

from modal_offload import paths
from modal_offload.backends import get_backend
from modal_offload.backends._base import Session, SessionSpec
from testing.modal_emulator import ModalEmulator
from tests.helpers import cli, make_workspace, spawn_cli
from tests.host.helpers import wait_for

ENV = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", files={"data/input.txt": "hello\n",
                                                  ".gitignore": "build/\n"})


@pytest.fixture
def session(modal_emulator: ModalEmulator, ws: Path) -> Session:
    spec = SessionSpec(name="mo-strict-test", workspace=ws, app_name="mo-strict-test",
                       cpu=1.0, memory_mb=512, timeout_seconds=120)
    return get_backend("modal").open_session(spec)


def test_stop_then_run_again_does_not_race_the_name(modal_emulator: ModalEmulator,
                                                    ws: Path) -> None:
    assert cli("exec", "--", "true", cwd=ws, env=ENV).returncode == 0
    assert cli("session", "stop", cwd=ws, env=ENV).returncode == 0
    out = cli("exec", "--", "cat", "data/input.txt", cwd=ws, env=ENV)
    assert out.returncode == 0 and out.stdout == b"hello\n", out.stderr
    old, new = modal_emulator.sandboxes()
    assert old.name == new.name and not old.running and new.running


def test_vanished_worker_ends_the_command_instead_of_hanging(modal_emulator: ModalEmulator,
                                                             ws: Path) -> None:
    proc = spawn_cli("exec", "-c", "echo started; sleep 120", cwd=ws, env=ENV)
    assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
    started = time.monotonic()
    modal_emulator.vanish_worker(modal_emulator.sandboxes()[0].sandbox_id)
    _, err = proc.communicate(timeout=60)
    # Noticed through the control plane within a watch interval, not at the exec deadline.
    assert time.monotonic() - started < 20
    assert proc.returncode == 125
    assert err.count(b"\n") == 1 and b"terminated" in err, err


def test_command_in_a_folder_missing_remotely(modal_emulator: ModalEmulator, ws: Path) -> None:
    (ws / "build").mkdir()  # ignored, so never synced: the remote has no such folder
    out = cli("exec", "--", "pwd", cwd=ws / "build", env=ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith(b"/workspace/build")


def test_stdin_goes_in_bounded_chunks(session: Session) -> None:
    big = b"x" * (20 * 1024 * 1024)  # over the client's 16 MiB per write
    process = session.exec(["wc", "-c"], cwd=session.root, env={})
    process.write_stdin(big)
    process.close_stdin()
    assert b"".join(process.stdout_chunks()).strip() == str(len(big)).encode()
    assert process.wait() == 0


def test_failed_stdin_write_ends_the_channel(modal_emulator: ModalEmulator,
                                             session: Session) -> None:
    process = session.exec(["cat"], cwd=session.root, env={})
    modal_emulator.fail_next("TaskExecStdinWrite", status=Status.FAILED_PRECONDITION)
    process.write_stdin(b"lost?\n")  # fails: the remote must still get EOF
    codes: list[int] = []
    waiter = threading.Thread(target=lambda: codes.append(process.wait()), daemon=True)
    waiter.start()
    waiter.join(timeout=30)
    assert codes == [0], "cat was left waiting for input that never came"


def test_first_image_build_holds_no_session_lock(modal_emulator: ModalEmulator,
                                                 ws: Path) -> None:
    modal_emulator.set_image_build_delay(3.0)
    proc = spawn_cli("exec", "--", "true", cwd=ws, env=ENV)

    def building() -> bool:
        return any(c.method == "ImageGetOrCreate" and c.ended_at is None
                   for c in modal_emulator.calls())

    assert wait_for(building, timeout=30)
    [lock] = paths.sessions_state_dir().glob("*.modal.lock.lock")
    # Another command may take the session lock while the image builds.
    with FileLock(str(lock), timeout=0.5):
        pass
    assert building()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


@pytest.mark.parametrize("name, value", [("MODAL_TIMEOUT_SECONDS", "86401"),
                                         ("MODAL_CPU", "65"), ("MODAL_MEMORY_MB", "400000"),
                                         ("MODAL_OFFLOAD_IDLE_TIMEOUT", "90000")])
def test_settings_past_modals_limits_are_bad_input(modal_emulator: ModalEmulator, ws: Path,
                                                   name: str, value: str) -> None:
    out = cli("exec", "--", "true", cwd=ws, env={**ENV, name: value})
    assert out.returncode == 125, out.stderr  # exec: its own failure, not the command's
    assert out.stderr.count(b"\n") == 1 and name.encode() in out.stderr
    assert b"Modal's limit" in out.stderr
    assert modal_emulator.sandboxes() == []  # refused before anything was created
