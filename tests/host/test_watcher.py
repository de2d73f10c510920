"""The inotify watcher and the sync engine's change hint: no walk when nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
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
def watcher(tree: Path) -> Iterator[Watcher]:
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
    real = vars(sync_client)["scan_with_stats"]

    def counting(*args: object, **kwargs: object) -> object:
        scans.append(1)
        return real(*args, **kwargs)

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


def _staged(tree: Path, name: str) -> Path:
    """A folder staged as a sync apply stages it: in an ignored staging folder."""
    staged = tree / ".modal-offload-staging-1-x" / "t" / name
    (staged / "deep").mkdir(parents=True)
    (staged / "deep" / "f.txt").write_text("f\n")
    (staged / "g.txt").write_text("g\n")
    return staged


def test_a_folder_an_apply_moves_in_is_watched_before_it_appears(
        tree: Path, watcher: Watcher) -> None:
    """The rename and the apply's chmods are its own; anything else in the moved folder,
    even right after the rename, is a change (a folder watched only once it appeared
    would leave a window: outside an apply, a folder moved in means "scan everything")."""
    watcher.take("s")
    staged = _staged(tree, "pkg")
    assert watcher.begin_moves()
    assert watcher.expect_move(str(staged), "pkg")
    staged.rename(tree / "pkg")
    (tree / "pkg" / "deep").chmod(0o750)  # as the apply sets the modes it received
    (tree / "pkg" / "deep" / "f.txt").write_text("someone else, before the apply ended\n")
    watcher.end_moves()
    assert watcher.take("s") == {"pkg/deep/f.txt"}
    (tree / "pkg" / "deep").chmod(0o700)  # after the apply: a change like any other
    (tree / "pkg" / "g.txt").write_text("later\n")
    assert watcher.take("s") == {"pkg/deep", "pkg/g.txt"}


def test_a_move_nobody_announced_still_means_scan(tree: Path, watcher: Watcher) -> None:
    watcher.take("s")
    staged = _staged(tree, "pkg")
    assert watcher.begin_moves()
    assert watcher.expect_move(str(staged), "pkg")
    staged.rename(tree / "pkg")
    other = _staged(tree, "other")  # not announced (another process's move)
    other.rename(tree / "other")
    watcher.end_moves()
    assert watcher.take("s") is None
    # Without begin_moves nothing is expected either.
    staged = _staged(tree, "pkg2")
    assert not watcher.expect_move(str(staged), "pkg2")
    staged.rename(tree / "pkg2")
    assert watcher.take("s") is None


def test_a_rule_file_an_apply_moves_in_rewatches_what_it_re_includes(
        tree: Path, watcher: Watcher) -> None:
    """`.venv` is ignored by the built-in rules; a moved-in folder's .gitignore cannot
    change that here, but a root rule file written during the apply makes the watches be
    walked again, and a folder watched only then counts as changed (its subtree is
    rescanned), never as unchanged."""
    (tree / "build").mkdir()
    (tree / "build" / "out.txt").write_text("o\n")
    (tree / ".gitignore").write_text("build/\n")
    watcher.take("s")  # a walk with build/ ignored: not watched
    assert watcher.take("s") == set()
    assert watcher.begin_moves()
    (tree / ".gitignore").write_text("")  # the apply's own rule file: build/ is back
    (tree / "build" / "out.txt").write_text("changed while nobody watched build/\n")
    watcher.end_moves()
    changed = watcher.take("s")
    assert changed is not None and {".gitignore", "build"} <= changed
    (tree / "build" / "out.txt").write_text("and watched from now on\n")
    assert watcher.take("s") == {"build/out.txt"}
