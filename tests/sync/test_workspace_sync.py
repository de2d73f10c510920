"""WorkspaceSync against the real local sandbox backend: every byte goes through exec."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from modal_offload.backends._base import Session
from modal_offload.sync.client import WorkspaceSync
from tests.sync.conftest import age, age_tree, snapshot, write_tree

MB = 1 << 20

MakeSync = Callable[..., WorkspaceSync]


def remote_view(session: Session) -> dict[str, tuple[str, int, bytes | str | None]]:
    return snapshot(Path(session.root))


def synced_view(workspace: Path) -> dict[str, tuple[str, int, bytes | str | None]]:
    """What should reach the remote: the workspace minus ignored paths."""
    skip = ("node_modules", ".git", "__pycache__", "build")
    return {k: v for k, v in snapshot(workspace).items()
            if not any(part in skip for part in k.split("/")) and not k.endswith(".pyc")}


def test_first_sync_is_full_and_exact(workspace: Path, session: Session,
                                      make_sync: MakeSync) -> None:
    write_tree(workspace, {"src/app.py": "print('hi')", "src/data/x.bin": os.urandom(3000),
                           "empty": None, "node_modules/lib.js": "x", ".git/HEAD": "ref",
                           "src/__pycache__/app.cpython-311.pyc": "bc", ".gitignore": "build/\n",
                           "build/out.o": "o", "名前/ü.txt": "unicode"})
    os.chmod(workspace / "src" / "app.py", 0o755)
    os.symlink("src/app.py", workspace / "app-link")
    report = make_sync(session).up()
    assert report.full and not report.exec_skipped and report.files_sent == 9
    assert remote_view(session) == synced_view(workspace)


def test_no_change_skips_exec_and_touched_identical_is_not_sent(
        workspace: Path, session: Session, make_sync: MakeSync) -> None:
    write_tree(workspace, {"a.py": "x = 1", "b.py": "y = 2"})
    age_tree(workspace)
    sync = make_sync(session)
    sync.up()
    runs = session.info().detail["exec_count"]
    again = sync.up()
    assert again.exec_skipped and again.bytes_sent == 0
    os.utime(workspace / "a.py")  # touched, same bytes
    touched = sync.up()
    assert touched.exec_skipped and touched.hashed == 1
    assert session.info().detail["exec_count"] == runs


def test_delta_only_one_megabyte_change(workspace: Path, session: Session,
                                        make_sync: MakeSync) -> None:
    write_tree(workspace, {f"pkg/m{i}.py": f"v = {i}\n" * 50 for i in range(200)})
    write_tree(workspace, {"data/blob.bin": os.urandom(MB)})
    age_tree(workspace)
    sync = make_sync(session)
    sync.up()
    (workspace / "data" / "blob.bin").write_bytes(os.urandom(MB))
    report = sync.up()
    assert report.files_sent == 1 and report.content_bytes == MB
    assert report.bytes_sent <= MB + 64 * 1024
    assert remote_view(session) == synced_view(workspace)


def test_mode_change_and_branch_switch_edits_are_sent(workspace: Path, session: Session,
                                                     make_sync: MakeSync) -> None:
    write_tree(workspace, {"run.sh": "echo a", "cfg.py": "A = 1\n"})
    age_tree(workspace)
    sync = make_sync(session)
    sync.up()
    os.chmod(workspace / "run.sh", 0o755)
    (workspace / "cfg.py").write_text("A = 2\n")  # same size, new mtime (a checkout)
    report = sync.up()
    assert report.files_sent == 2
    assert Path(session.root, "run.sh").stat().st_mode & 0o777 == 0o755
    assert Path(session.root, "cfg.py").read_text() == "A = 2\n"


def test_deletions_both_ways(workspace: Path, session: Session, make_sync: MakeSync) -> None:
    write_tree(workspace, {"gone.txt": "1", "dir/a": "2", "dir/b": "3", "remote-rm.txt": "4",
                           "kept-local.txt": "5"})
    age_tree(workspace)
    sync = make_sync(session)
    sync.up()
    (workspace / "gone.txt").unlink()
    for name in ("a", "b"):
        (workspace / "dir" / name).unlink()
    (workspace / "dir").rmdir()
    report = sync.up()
    assert report.deleted == 4 and report.files_sent == 0
    assert not Path(session.root, "gone.txt").exists() and not Path(session.root, "dir").exists()
    Path(session.root, "remote-rm.txt").unlink()
    Path(session.root, "kept-local.txt").unlink()
    (workspace / "kept-local.txt").write_text("edited here meanwhile")
    back = sync.back()
    assert back.deleted == ["remote-rm.txt"] and not (workspace / "remote-rm.txt").exists()
    assert [(c.path, c.remote_copy) for c in back.conflicts] == [("kept-local.txt", None)]
    assert (workspace / "kept-local.txt").read_text() == "edited here meanwhile"
    sync.up()  # local wins: the edited file goes back up
    assert Path(session.root, "kept-local.txt").read_text() == "edited here meanwhile"


def test_remote_generated_files_come_back_and_do_not_go_up_again(
        workspace: Path, session: Session, make_sync: MakeSync) -> None:
    write_tree(workspace, {"main.py": "print()"})
    sync = make_sync(session)
    sync.up()
    remote = Path(session.root)
    write_tree(remote, {"out/result.json": '{"ok": 1}', "out/deep/plot.png": os.urandom(500),
                        "out/empty": None, "main.py": "print('edited remotely')"})
    os.symlink("result.json", remote / "out" / "latest")
    os.chmod(remote / "out" / "result.json", 0o600)
    back = sync.back()
    assert not back.conflicts and not back.refused
    assert {"out", "out/result.json", "out/deep/plot.png", "out/empty", "out/latest",
            "main.py"} <= set(back.applied)
    assert back.bytes_received > 500
    assert snapshot(workspace) == snapshot(remote)
    assert sync.up().exec_skipped
    assert sync.back().applied == []


def test_conflict_keeps_local_and_saves_remote_beside_it(
        workspace: Path, session: Session, make_sync: MakeSync) -> None:
    write_tree(workspace, {"notes.md": "base"})
    sync = make_sync(session)
    sync.up()
    (workspace / "notes.md").write_text("local edit while the command ran")
    Path(session.root, "notes.md").write_text("remote edit")
    back = sync.back()
    (conflict,) = back.conflicts
    assert conflict.path == "notes.md" and conflict.remote_copy is not None
    assert conflict.remote_copy.startswith("notes.md.remote-")
    assert (workspace / "notes.md").read_text() == "local edit while the command ran"
    assert (workspace / conflict.remote_copy).read_text() == "remote edit"
    path, saved_as = conflict  # unpacks for callers that show only these two
    assert (path, saved_as) == ("notes.md", conflict.remote_copy)
    up = sync.up()  # the local version wins remotely; the copy stays local
    assert up.files_sent == 1
    assert Path(session.root, "notes.md").read_text() == "local edit while the command ran"
    assert not Path(session.root, conflict.remote_copy).exists()


def test_local_edits_during_the_run_are_sent_next_time(
        workspace: Path, session: Session, make_sync: MakeSync) -> None:
    write_tree(workspace, {"a": "1", "b": "2"})
    sync = make_sync(session)
    sync.up()
    (workspace / "b").write_text("edited locally during the run")
    Path(session.root, "a").write_text("remote")
    assert sync.back().applied == ["a"]
    assert sync.up().files_sent == 1
    assert Path(session.root, "b").read_text() == "edited locally during the run"


def test_size_cap_applies_nothing_and_offers_again(
        workspace: Path, session: Session, make_sync: MakeSync) -> None:
    write_tree(workspace, {"old.txt": "x"})
    sync = make_sync(session, max_bytes=MB)
    sync.up()
    write_tree(Path(session.root), {"big.bin": os.urandom(2 * MB), "small.txt": "s"})
    Path(session.root, "old.txt").unlink()
    back = sync.back()
    assert back.over_cap and back.applied == [] and back.deleted == []
    assert sorted(back.skipped_over_cap) == ["big.bin", "old.txt", "small.txt"]
    assert back.skipped_bytes == 2 * MB + 1 and back.bytes_received < 4096
    assert sorted(os.listdir(workspace)) == ["old.txt"]
    bigger = make_sync(session, max_bytes=3 * MB).back()
    assert sorted(bigger.applied) == ["big.bin", "small.txt"] and bigger.deleted == ["old.txt"]


def test_replaced_session_gets_a_full_resync(
        workspace: Path, open_session: Callable[[], Session], make_sync: MakeSync) -> None:
    write_tree(workspace, {"a": "1", "sub/b": "2"})
    first = open_session()
    make_sync(first).up()
    first.terminate()  # the sandbox died; the cache still holds its baseline
    second = open_session()
    assert second.id != first.id
    report = make_sync(second).up()
    assert report.full and report.files_sent == 3
    assert remote_view(second) == synced_view(workspace)
    second.terminate()


def test_ignored_paths_never_travel(workspace: Path, session: Session,
                                    make_sync: MakeSync) -> None:
    write_tree(workspace, {".gitignore": "*.log\nsecrets/\n", "app.py": "", "debug.log": "l",
                           "secrets/key": "k", ".venv/bin/python": "", "x.pyc": ""})
    sync = make_sync(session)
    sync.up()
    assert set(remote_view(session)) == {".gitignore", "app.py"}
    write_tree(Path(session.root), {"run.log": "remote log", "secrets/token": "t",
                                    "node_modules/dep/index.js": "js", "mod.pyc": "bc",
                                    ".git/config": "[core]", "result.txt": "ok"})
    back = sync.back()
    assert back.applied == ["result.txt"]
    assert not any((workspace / p).exists() for p in ("run.log", "secrets/token",
                                                      "node_modules", "mod.pyc", ".git"))


def test_symlink_pointing_outside_is_refused_remotely(
        workspace: Path, session: Session, make_sync: MakeSync, tmp_path: Path) -> None:
    write_tree(workspace, {"ok.txt": "1"})
    os.symlink(tmp_path, workspace / "escape")
    report = make_sync(session).up()
    assert [r.path for r in report.refused] == ["escape"]
    assert not os.path.lexists(Path(session.root, "escape"))


class CountingSession:
    """The real session, counting the sync agents it starts (to see a collect skipped)."""

    def __init__(self, inner: Session) -> None:
        self._inner = inner
        self.agents = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def exec(self, argv: list[str], **kw: object) -> object:
        if "modal_offload.sync.remote" in argv:
            self.agents += 1
        return self._inner.exec(argv, **kw)  # type: ignore[arg-type]


def test_unchanged_remote_skips_the_collect_but_never_misses_a_change(
        workspace: Path, session: Session, make_sync: MakeSync) -> None:
    write_tree(workspace, {"a.txt": "one", "sub/b.txt": "two"})
    counting = CountingSession(session)
    sync = make_sync(counting)
    sync.up()
    assert sync.back().applied == []  # first collect after an apply: the full agent runs
    before = counting.agents
    assert sync.back().applied == [] and counting.agents == before  # quick check only
    remote = Path(session.root)
    # A rewrite that fakes an old mtime (cp -p, tar -x) still changes the ctime.
    (remote / "sub" / "b.txt").write_text("TWO")
    os.utime(remote / "sub" / "b.txt", (0, 0))
    assert sync.back().applied == ["sub/b.txt"]
    assert (workspace / "sub" / "b.txt").read_text() == "TWO"
    (remote / "a.txt").unlink()
    assert sync.back().deleted == ["a.txt"]
    before = counting.agents
    assert sync.back().applied == [] and counting.agents == before


def test_full_apply_offers_remote_only_files_back(
        workspace: Path, session: Session, make_sync: MakeSync, tmp_path: Path) -> None:
    write_tree(workspace, {"a.txt": "one"})
    sync = make_sync(session)
    sync.up()
    sync.back()
    write_tree(Path(session.root), {"made-remotely.txt": "r"})
    age(Path(session.root) / "made-remotely.txt")
    # The client lost its cache (a new machine, a wiped cache dir): the next up is full.
    fresh = WorkspaceSync(workspace, session, tmp_path / "other-cache", max_bytes=64 << 20)
    assert fresh.up().full
    assert "made-remotely.txt" in fresh.back().applied
