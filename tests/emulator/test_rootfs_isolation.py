"""Image mode rootfs: sandboxes run inside their real image, isolated from the host."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import modal

from testing.modal_emulator import ModalEmulator
from tests.host.helpers import wait_for


def _sandbox(app_name: str, image: modal.Image | None = None) -> modal.Sandbox:
    app = modal.App.lookup(app_name, create_if_missing=True)
    return modal.Sandbox.create(app=app, image=image or modal.Image.debian_slim())


def _run(sb: modal.Sandbox, *argv: str, workdir: str | None = None) -> tuple[int, str, str]:
    proc = sb.exec(*argv, workdir=workdir)
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


def test_exec_paths_are_container_paths(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    sb = _sandbox(app_name)
    # An exec's workdir must exist (emulator README, "Exec workdir").
    assert _run(sb, "mkdir", "-p", "/srv/work")[0] == 0
    code, out, err = _run(
        sb, "sh", "-c", "pwd; echo made > /srv/made.txt; cat /srv/made.txt", workdir="/srv/work"
    )
    assert (code, out) == (0, "/srv/work\nmade\n"), err
    # /srv/work is the container's: the host has no such file, the sandbox's root does.
    assert not Path("/srv/made.txt").exists()
    root = modal_emulator_rootfs.sandbox(sb.object_id).root
    assert (root / "srv" / "made.txt").read_text() == "made\n"
    # Files the image has are readable by their container paths.
    code, out, _ = _run(sb, "python", "-c", "import sys; print(sys.prefix)")
    assert (code, out) == (0, "/usr\n")


def test_exit_codes_signals_and_stdin_behave_as_in_host_mode(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    sb = _sandbox(app_name)
    assert _run(sb, "sh", "-c", "exit 3")[0] == 3
    assert _run(sb, "sh", "-c", "kill -TERM $$")[0] == 143
    proc = sb.exec("cat")
    proc.stdin.write(b"through stdin\n")
    proc.stdin.write_eof()
    proc.stdin.drain()
    assert proc.wait() == 0
    assert proc.stdout.read() == "through stdin\n"
    # The container has its own pid namespace: its processes see only each other.
    code, out, _ = _run(sb, "sh", "-c", "ls /proc | grep -c '^[0-9]'")
    assert code == 0 and int(out) <= 6


def _host_pids_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _mounts_mentioning(text: str) -> list[str]:
    """Mount table lines, of every process on the machine, that mention `text`."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines += [ln for ln in (entry / "mountinfo").read_text().splitlines() if text in ln]
            except OSError:
                continue
    return lines


def test_terminate_kills_everything_and_leaves_no_mount(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    sb = _sandbox(app_name)
    scratch = modal_emulator_rootfs.base_dir / sb.object_id
    code, _, err = _run(
        sb, "sh", "-c", f"python3 -c 'import time; time.sleep(600)' {marker} >/dev/null 2>&1 &"
    )
    assert code == 0, err
    assert wait_for(lambda: len(_host_pids_with(marker)) == 1)
    assert _mounts_mentioning(str(scratch))  # the overlay exists, in the container's namespace
    assert not [
        ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if str(scratch) in ln
    ]  # and never in the host's
    sb.terminate()
    assert wait_for(lambda: not _host_pids_with(marker))
    assert wait_for(lambda: not _mounts_mentioning(str(scratch)))
    assert wait_for(lambda: not scratch.exists())


def test_reset_ends_running_sandboxes_without_leftovers(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    sandboxes = [_sandbox(app_name) for _ in range(2)]
    scratches = [modal_emulator_rootfs.base_dir / sb.object_id for sb in sandboxes]
    assert all(s.exists() for s in scratches)
    modal_emulator_rootfs.reset()
    for scratch in scratches:
        assert not _mounts_mentioning(str(scratch))
        assert not scratch.exists()


def test_a_sandbox_reaches_pypi_and_keeps_what_it_installs(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    # As on Modal: the network is open, and installs persist for the sandbox's lifetime only.
    sb = _sandbox(app_name)
    code, _, err = _run(sb, "pip", "install", "--quiet", "--root-user-action=ignore", "six")
    assert code == 0, err
    assert _run(sb, "python", "-c", "import six")[0] == 0
    assert _run(_sandbox(app_name), "python", "-c", "import six")[0] == 1
