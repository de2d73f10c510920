"""Issue 19 item 3: opening a session (a first image build can take minutes) is a bounded,
interruptible wait that says what it is waiting for. The emulator's image builds are slowed
with `set_image_build_delay`."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from modal_offload.errors import INTERRUPTED_EXIT
from testing.modal_emulator import ModalEmulator
from tests.helpers import cli, make_workspace, spawn_cli

ENV = {"MODAL_OFFLOAD_BACKEND": "modal"}


def test_ctrl_c_while_the_image_builds_stops_waiting_at_once(
        modal_emulator: ModalEmulator, tmp_path: Path) -> None:
    modal_emulator.set_image_build_delay(120)
    ws = make_workspace(tmp_path / "ws")
    proc = spawn_cli("exec", "--", "echo", "hi", cwd=ws, env=ENV)
    assert proc.stderr is not None
    seen: list[bytes] = []  # the image's own notes may come first (issue 12)
    while not seen or not seen[-1].startswith(b"modal-offload: still opening"):
        line = proc.stderr.readline()  # said after a few seconds of waiting
        assert line, seen
        seen.append(line)
    assert b"Ctrl-C stops waiting" in seen[-1]
    proc.send_signal(signal.SIGINT)
    begun = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == INTERRUPTED_EXIT, err
    assert err.startswith(b"modal-offload: stopped waiting for the modal session")
    assert err.count(b"\n") == 1 and out == b""
    assert time.monotonic() - begun < 10  # not the build's 120 s


def test_an_open_past_its_bound_runs_the_command_here(
        modal_emulator: ModalEmulator, tmp_path: Path) -> None:
    modal_emulator.set_image_build_delay(120)
    ws = make_workspace(tmp_path / "ws")
    begun = time.monotonic()
    out = cli("exec", "--", "echo", "hi", cwd=ws,
              env={**ENV, "MODAL_OFFLOAD_OPEN_TIMEOUT": "2"}, timeout=60)
    assert (out.returncode, out.stdout) == (0, b"hi\n"), out.stderr
    assert b"running locally: opening the modal session took more than 2s" in out.stderr
    assert time.monotonic() - begun < 30
