"""The inotify watcher and the sync engine's change hint: no walk when nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from modal_offload.backends._base import SessionSpec
from modal_offload.backends.local import LocalBackend
from modal_offload.host.runner import HintedSync
from modal_offload.host.watcher import IN_Q_OVERFLOW, Watcher
from modal_offload.sync import client as sync_client
from modal_offload.sync.client import WorkspaceSync
from tests.helpers import make_workspace


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", files={"a.txt": "a\n", "sub/b.txt": "b\n",
                                                   ".venv/lib.py": "x\n"})


@pytest.fixture
def watcher(tree: Path) -> Watcher:
    w = Watcher.create(tree)
    assert w is not None
    yield w
    w.close()


def test_take_reports_changes_and_overflow_means_scan(tree: Path, watcher: Watcher) -> None:
    assert watcher.take("s") is None  # a new consumer has no baseline to trust
    (tree / "a.txt").write_text("changed\n")
    (tree / "sub" / "b.txt").unlink()
    (tree / "new").mkdir()
    (tree / "new" / "deep.txt").write_text("d\n")
    (tree / ".venv" / "lib.py").write_text("ignored folders are not watched\n")
    changed = watcher.take("s")
    assert changed is not None and {"a.txt", "sub/b.txt", "new"} <= changed
    assert not any(p.startswith(".venv") for p in changed)
    assert watcher.take("s") == set()
    watcher.event(-1, IN_Q_OVERFLOW, "")  # as the kernel reports a dropped queue
    assert watcher.take("s") is None
    assert watcher.take("s") == set()
    (tree / "new" / "deep.txt").write_text("watched since its folder appeared\n")
    assert watcher.take("s") == {"new/deep.txt"}


def test_ignore_file_change_and_invalidate_mean_scan(tree: Path, watcher: Watcher) -> None:
    watcher.take("s")
    (tree / ".gitignore").write_text("*.log\n")
    assert watcher.take("s") is None
    watcher.invalidate("s")
    assert watcher.take("s") is None


def _sync(tree: Path, tmp_path: Path) -> WorkspaceSync:
    spec = SessionSpec(name="mo-test-hint", workspace=tree)
    session = LocalBackend(tmp_path / "sandboxes").open_session(spec)
    return WorkspaceSync(tree, session, tmp_path / "cache")


def test_hinted_up_walks_nothing_and_sends_only_hinted(tree: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    sync = _sync(tree, tmp_path)
    assert sync.up().full
    remote = Path(sync.session.root)

    def no_walk(*args: object, **kwargs: object) -> object:
        raise AssertionError("walked the tree")

    (tree / "a.txt").write_text("edited\n")
    (tree / "made").mkdir()
    (tree / "made" / "c.txt").write_text("c\n")
    monkeypatch.setattr(sync_client, "scan_with_stats", no_walk)
    report = sync.up(changed={"a.txt", "made"})
    assert (remote / "a.txt").read_text() == "edited\n"
    assert (remote / "made" / "c.txt").read_text() == "c\n"
    assert report.files_sent >= 3
    assert sync.up(changed=set()).exec_skipped


def test_overflow_through_hinted_sync_falls_back_to_a_full_scan(
        tree: Path, tmp_path: Path, watcher: Watcher, monkeypatch: pytest.MonkeyPatch) -> None:
    inner = _sync(tree, tmp_path)
    hinted = HintedSync(inner, watcher, "mo-test-hint")
    hinted.up()  # first: full scan, and the watcher starts tracking this consumer
    scans: list[int] = []
    real = sync_client.scan_with_stats

    def counting(*args: object, **kwargs: object) -> object:
        scans.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sync_client, "scan_with_stats", counting)
    assert hinted.up().exec_skipped and scans == []  # nothing changed: no walk
    watcher.event(-1, IN_Q_OVERFLOW, "")
    (tree / "sub" / "b.txt").write_text("after overflow\n")
    hinted.up()
    assert scans == [1]
    assert (Path(inner.session.root) / "sub" / "b.txt").read_text() == "after overflow\n"


def test_too_many_changes_mean_scan(tree: Path, watcher: Watcher,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from modal_offload.host import watcher as watcher_mod

    monkeypatch.setattr(watcher_mod, "MAX_HINTED_PATHS", 3)
    watcher.take("s")
    for i in range(5):
        (tree / f"n{i}.txt").write_text("x")
    assert watcher.take("s") is None
