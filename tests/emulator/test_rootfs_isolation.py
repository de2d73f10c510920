"""Image mode rootfs: sandboxes run inside their real image, isolated from the host."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import modal
import pytest

from testing.modal_emulator import ModalEmulator


def _sandbox(app_name: str, image: modal.Image | None = None, **kwargs: object) -> modal.Sandbox:
    app = modal.App.lookup(app_name, create_if_missing=True)
    return modal.Sandbox.create(app=app, image=image or modal.Image.debian_slim(), **kwargs)  # type: ignore[arg-type]


def _run(sb: modal.Sandbox, *argv: str, **kwargs: object) -> tuple[int, str, str]:
    proc = sb.exec(*argv, **kwargs)  # type: ignore[arg-type]
    code = proc.wait()
    return code, proc.stdout.read(), proc.stderr.read()


def test_numpy_is_missing_until_the_image_installs_it(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    bare = _sandbox(app_name)
    code, _, err = _run(bare, "python", "-c", "import numpy")
    assert code == 1
    assert "ModuleNotFoundError: No module named 'numpy'" in err
    bare.terminate()

    with_numpy = _sandbox(app_name, modal.Image.debian_slim().pip_install("numpy"))
    code, out, err = _run(with_numpy, "python", "-c", "import numpy; print(numpy.__name__)")
    assert (code, out) == (0, "numpy\n"), err


def test_a_host_only_binary_is_not_found_inside(
    modal_emulator_rootfs: ModalEmulator, app_name: str, tmp_path: Path
) -> None:
    # A binary that exists only on the host, on the emulator's own PATH.
    host_bin = tmp_path / "bin"
    host_bin.mkdir()
    tool = host_bin / "host-only-xyz"
    tool.write_text("#!/bin/sh\necho host\n")
    tool.chmod(0o755)
    assert shutil.which("host-only-xyz", path=str(host_bin))
    sb = _sandbox(app_name)
    code, _, err = _run(sb, "host-only-xyz")
    assert code == 127
    assert "host-only-xyz" in err
    # Through a shell too: "command not found", exit 127.
    code, _, err = _run(sb, "sh", "-c", f"host-only-xyz || {tool}")
    assert code == 127
    assert "not found" in err
    # Tools .ci/run installs on the host that debian_slim does not have.
    on_host = [t for t in ("git", "rsync", "zsh") if shutil.which(t)]
    assert on_host
    for name in on_host:
        assert _run(sb, name, "--version")[0] == 127, name
    # The host's own venv interpreter is not there either.
    code, _, _ = _run(sb, "test", "-e", os.path.realpath(sys.executable))
    assert code == 1


def test_files_outside_the_sandbox_are_invisible(
    modal_emulator_rootfs: ModalEmulator, app_name: str, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only\n")
    sb = _sandbox(app_name)
    code, _, err = _run(sb, "cat", str(secret))
    assert code == 1
    assert "No such file or directory" in err
    # The sandbox's own files are where a container has them.
    code, out, _ = _run(sb, "cat", "/etc/debian_version")
    assert code == 0 and out.startswith("12.")
