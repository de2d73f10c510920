"""A workspace past `sync_max_files` on the Modal backend (issue 21): refused in one line,
and no sandbox opened for that command is left running, billing idle, until the tree is
trimmed; a warm sandbox the user already had is kept. In-process and through the host."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.modal_emulator import ModalEmulator
from tests.helpers import cli, make_workspace
from tests.host.helpers import stop_hosts

ENV = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5"}


@pytest.fixture(params=["in-process", "host"])
def env(request: pytest.FixtureRequest, tmp_home: Path) -> Iterator[dict[str, str]]:
    host = request.param == "host"
    yield {**ENV, "MODAL_OFFLOAD_HOST": "1" if host else "0",
           "MODAL_OFFLOAD_HOST_IDLE_SECONDS": "60"}
    if host:
        stop_hosts(tmp_home)


def fill(folder: Path, files: int) -> None:
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"f{i:03d}.txt").write_text(str(i))


def running(emu: ModalEmulator) -> list[str]:
    return [s.sandbox_id for s in emu.sandboxes() if s.running]


def test_a_refused_first_sync_leaves_no_sandbox_running(modal_emulator: ModalEmulator,
                                                        env: dict[str, str],
                                                        tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", "sync_max_files = 40\n", {"main.py": "x"})
    fill(ws / "data", 60)
    out = cli("exec", "--", "sh", "-c", "echo ran > ran.txt", cwd=ws, env=env)
    assert out.returncode != 0 and b"more than 40 files" in out.stderr, out.stderr
    assert out.stderr.count(b"\n") == 1 and b"Traceback" not in out.stderr
    assert running(modal_emulator) == []
    # Trimmed, the next command (at once: within the host's reuse window) gets a live one.
    (ws / ".modal-offloadignore").write_text("data/\n")
    again = cli("exec", "--", "sh", "-c", "echo ran > ran.txt", cwd=ws, env=env)
    assert again.returncode == 0, again.stderr
    assert (ws / "ran.txt").read_text() == "ran\n"
    assert len(running(modal_emulator)) == 1


def test_a_warm_sandbox_outlives_a_refused_command(modal_emulator: ModalEmulator,
                                                   env: dict[str, str], tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", "sync_max_files = 40\n", {"main.py": "x"})
    assert cli("exec", "--", "true", cwd=ws, env=env).returncode == 0
    warm = running(modal_emulator)
    assert len(warm) == 1
    fill(ws / "data", 60)
    out = cli("exec", "--", "true", cwd=ws, env=env)
    assert out.returncode != 0 and b"more than 40 files" in out.stderr, out.stderr
    assert running(modal_emulator) == warm
    shutil.rmtree(ws / "data")
    back = cli("exec", "--", "sh", "-c", "cat main.py", cwd=ws, env=env)
    assert (back.returncode, back.stdout) == (0, b"x"), back.stderr
    assert running(modal_emulator) == warm
    assert modal_emulator.call_counts()["SandboxCreateV2"] == 1
