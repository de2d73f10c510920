"""Images with local files: mount and blob uploads reach the sandbox's scratch filesystem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import modal
import pytest

from testing.modal_emulator import ModalEmulator


def test_local_python_source_and_dir_are_materialized(
    modal_emulator: ModalEmulator, app_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "emu_mount_pkg").mkdir(parents=True)
    (src / "emu_mount_pkg" / "__init__.py").write_text("VALUE = 'mounted'\n")
    monkeypatch.syspath_prepend(str(src))
    data = tmp_path / "data"
    data.mkdir()
    (data / "small.txt").write_text("small file\n")
    big = bytes(range(256)) * (5 * 1024 * 4)  # 5 MiB: above the client's 4 MiB blob threshold
    (data / "big.bin").write_bytes(big)

    image = (
        modal.Image.debian_slim()
        .pip_install("requests")
        .add_local_python_source("emu_mount_pkg")
        .add_local_dir(data, "/data")
    )
    app = modal.App.lookup(app_name, create_if_missing=True)
    sb = modal.Sandbox.create(app=app, image=image, timeout=60)
    rec = modal_emulator.sandbox(sb.object_id)
    assert len(rec.mount_ids) == 2
    assert (rec.root / "data" / "small.txt").read_text() == "small file\n"
    assert (rec.root / "root" / "emu_mount_pkg" / "__init__.py").exists()

    p = sb.exec("python", "-c", "import emu_mount_pkg; print(emu_mount_pkg.VALUE)", workdir="/root")
    assert p.stdout.read() == "mounted\n"
    assert p.wait() == 0
    digest = "import hashlib; print(hashlib.sha256(open('big.bin', 'rb').read()).hexdigest())"
    p = sb.exec("python", "-c", digest, workdir="/data")
    assert p.stdout.read().strip() == hashlib.sha256(big).hexdigest()
    assert p.wait() == 0
    counts = modal_emulator.call_counts()
    assert counts["BlobCreate"] == 1 and counts["MountGetOrCreate"] == 2


def test_image_workdir_is_the_default_cwd(modal_emulator: ModalEmulator, app_name: str) -> None:
    image = modal.Image.debian_slim().workdir("/srv/app")
    app = modal.App.lookup(app_name, create_if_missing=True)
    sb = modal.Sandbox.create(app=app, image=image, timeout=60)
    p = sb.exec("pwd")
    assert p.stdout.read().strip() == str(modal_emulator.sandbox(sb.object_id).root / "srv" / "app")
    assert p.wait() == 0
