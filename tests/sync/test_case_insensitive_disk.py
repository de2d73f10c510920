"""Issue 13, class 4 on a real case-insensitive disk (testing/cifs.py, FUSE).

macOS's default disk merges `.GIT` with `.git` and NFD with NFC spellings; this kernel has
no vfat or casefold, so a FUSE passthrough plays that disk. A remote that writes
`.GIT/hooks/pre-commit` must not reach the laptop's `.git/hooks/pre-commit`, which the
next local `git commit` would run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, cli, local_backend_env, make_workspace
from tests.host.helpers import wait_for

# Root and /dev/fuse are how this project's machines and CI run (.ci/run installs libfuse2).
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                                reason="mounting FUSE needs root and /dev/fuse")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(mount point, backing folder) of a fresh case-insensitive disk."""
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mnt.mkdir()
    fs = subprocess.Popen([sys.executable, "-m", "testing.cifs", str(backing), str(mnt)],
                          cwd=REPO, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: os.path.ismount(mnt) or fs.poll() is not None), "no mount"
        assert fs.poll() is None, fs.stderr.read() if fs.stderr else b""
        yield mnt, backing
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        fs.wait(timeout=10)


def test_the_disk_really_is_case_insensitive(disk: tuple[Path, Path]) -> None:
    mnt, backing = disk
    (mnt / ".git" / "hooks").mkdir(parents=True)
    (mnt / ".GIT" / "HOOKS" / "pre-commit").write_text("x")
    (mnt / "caf\u00e9").write_text("nfc")
    assert (backing / ".git" / "hooks" / "pre-commit").read_text() == "x"
    assert (mnt / "cafe\u0301").read_text() == "nfc"


def test_remote_spellings_of_git_never_land_in_git_hooks(disk: tuple[Path, Path]) -> None:
    mnt, backing = disk
    ws = make_workspace(mnt / "ws", files={"a.txt": "a", ".claude/settings.json": "{}"})
    (ws / ".git" / "hooks").mkdir(parents=True)
    script = (
        "import os\n"
        "for d in ['.GIT/hooks', '.Git/Hooks', '.MODAL-SHIMS', '.CLAUDE']:\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "open('.GIT/hooks/pre-commit', 'w').write('evil')\n"
        "open('.Git/Hooks/post-checkout', 'w').write('evil')\n"
        "open('.MODAL-SHIMS/ls', 'w').write('evil')\n"
        "open('.CLAUDE/settings.json', 'w').write('evil')\n")
    out = cli("exec", "--", sys.executable, "-c", script, cwd=ws, env=local_backend_env(),
              timeout=120)
    assert out.returncode == 0, out.stderr
    hooks = backing / "ws" / ".git" / "hooks"
    assert os.listdir(hooks) == []
    assert not (backing / "ws" / ".modal-shims").exists()
    assert (backing / "ws" / ".claude" / "settings.json").read_text() == "{}"


def test_a_case_spelling_never_overwrites_a_file_the_remote_never_had(
        disk: tuple[Path, Path]) -> None:
    # `data/local.db` is gitignored, so the remote never had it; the remote's `local.DB`
    # is not ignored (git's rules are case-sensitive) and, on this disk, is the same file.
    mnt, backing = disk
    ws = make_workspace(mnt / "ws", files={".gitignore": "*.db\n", "data/local.db": "mine",
                                           "data/keep.txt": "k"})
    out = cli("exec", "-c", "echo theirs > data/local.DB; echo new > data/other.txt",
              cwd=ws, env=local_backend_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert (backing / "ws" / "data" / "local.db").read_text() == "mine"
    assert (backing / "ws" / "data" / "other.txt").read_text() == "new\n"
