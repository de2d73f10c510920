"""Trees past `sync_max_files` (issue 21): refused in one line that says what to do, with
the scan stopped at the limit instead of holding the whole tree; on either side."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modal_offload.backends._base import Session
from modal_offload.errors import SyncError
from modal_offload.sync.client import WorkspaceSync
from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.manifest import TooManyEntries, scan_with_stats
from tests.helpers import cli, make_workspace


def fill(folder: Path, folders: int, files: int) -> None:
    for d in range(folders):
        sub = folder / f"d{d:02d}"
        sub.mkdir(parents=True)
        for f in range(files):
            (sub / f"f{f:03d}.txt").write_text(str(f))


def test_exec_refuses_a_workspace_past_the_limit_in_one_line(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", "sync_max_files = 40\n", {"main.py": "x"})
    fill(ws / "data", 5, 20)
    env = {"MODAL_OFFLOAD_BACKEND": "local"}
    out = cli("exec", "--", "sh", "-c", "echo ran > ran.txt", cwd=ws, env=env)
    assert out.returncode != 0 and out.stderr.count(b"\n") == 1, out.stderr
    assert b"more than 40 files" in out.stderr and b"sync_max_files" in out.stderr
    assert b".modal-offloadignore" in out.stderr and b"Traceback" not in out.stderr
    assert not (ws / "ran.txt").exists()
    # What the message says to do works: ignore the data folder and the command runs.
    (ws / ".modal-offloadignore").write_text("data/\n")
    again = cli("exec", "--", "sh", "-c", "echo ran > ran.txt", cwd=ws, env=env)
    assert again.returncode == 0, again.stderr
    assert (ws / "ran.txt").read_text() == "ran\n"


@pytest.fixture
def opened_folders(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every folder the scan lists, in order (os.scandir observed, not replaced)."""
    seen: list[str] = []
    real = os.scandir

    def observed(path: str) -> object:
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", observed)
    yield seen


def test_the_scan_stops_at_the_limit(tmp_path: Path, opened_folders: list[str]) -> None:
    root = tmp_path / "tree"
    fill(root, 30, 10)  # 330 paths in 30 folders
    (root / "flat").mkdir()
    for i in range(500):
        (root / "flat" / f"{i}").write_text("")
    rules = IgnoreRules.load(root)
    with pytest.raises(TooManyEntries):
        scan_with_stats(root, rules, max_entries=25)
    # The root, then at most the folders needed to pass 25 paths: not the whole tree.
    assert len(opened_folders) <= 4, opened_folders
    opened_folders.clear()
    manifest, _ = scan_with_stats(root, rules, max_entries=10_000)
    assert len(manifest.entries) == 831 and len(opened_folders) == 32


def test_a_remote_tree_past_the_limit_is_refused_on_sync_back(
        session: Session, make_sync: Callable[..., WorkspaceSync], workspace: Path) -> None:
    (workspace / "a.txt").write_text("a")
    sync = make_sync(session, max_files=30)
    sync.up()
    proc = session.exec(["sh", "-c", "mkdir gen && for i in $(seq 60); do : > gen/$i; done"],
                        cwd=session.root, env={})
    assert proc.wait() == 0
    with pytest.raises(SyncError) as caught:
        sync.back()
    line = caught.value.one_line()
    assert "remote workspace holds more than 30 files" in line and "sync_max_files" in line
    assert not (workspace / "gen").exists()
