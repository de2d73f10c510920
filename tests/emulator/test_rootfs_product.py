"""The product against the emulator in rootfs mode: what would fail on Modal fails here too."""

from __future__ import annotations

import json
from pathlib import Path

from testing.modal_emulator import ModalEmulator
from tests.helpers import REPO, cli, make_workspace

ENV = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5"}
PAYLOAD = '{"iterations":24000000,"workers":6}'


def test_heavy_demo_gives_the_checksum_in_its_real_image(
    modal_emulator_rootfs: ModalEmulator, tmp_path: Path
) -> None:
    # The README's quick start: primary_compute.py imports numpy, which the image must install;
    # the image follows what the workspace declares (issue 12).
    ws = make_workspace(
        tmp_path / "ws", files={"primary_compute.py": (REPO / "primary_compute.py").read_text(),
                                "requirements.txt": "numpy\n"}
    )
    out = cli("heavy", "--mode", "modal", "--payload", PAYLOAD, cwd=ws, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    result = json.loads(out.stdout)
    assert result["execution"] == "modal"
    assert result["checksum"] == 3427908807260612608
    [rec] = modal_emulator_rootfs.sandboxes()
    assert rec.execs and all(e.exit_code is not None or e.exit_signal for e in rec.execs)


def test_a_routed_command_needs_the_image_to_have_it(
    modal_emulator_rootfs: ModalEmulator, tmp_path: Path
) -> None:
    # Host mode ran the host's jq (when the host has one); on Modal, and here, only what the
    # image installs exists.
    bare = make_workspace(tmp_path / "bare")
    # `remote`: no routing check (issue 12 would run a program the image lacks locally).
    out = cli("exec", "--", "jq", "--version", cwd=bare, timeout=600,
              env={**ENV, "MODAL_OFFLOAD_WHEN_MISSING_PROGRAM": "remote"})
    assert out.returncode == 127, out.stderr
    declared = make_workspace(tmp_path / "declared", 'apt_packages = ["jq"]\n')
    out = cli("exec", "--", "jq", "--version", cwd=declared, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"jq-")
