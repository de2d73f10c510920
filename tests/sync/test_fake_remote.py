"""Sync-back against a remote that lies or fails: hostile archives, broken streams, errors."""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from modal_offload.backends._base import Process, PtySpec, Session, SessionInfo
from modal_offload.errors import SyncError
from modal_offload.sync.client import WorkspaceSync
from modal_offload.sync.tarstream import encode_header
from tests.sync.conftest import snapshot, write_tree
from tests.sync.test_extract import Member, make_tar


class FakeProcess(Process):
    def __init__(self, stdout: bytes, stderr: bytes = b"", code: int = 0) -> None:
        self.stdin = bytearray()
        self._stdout, self._stderr, self._code = stdout, stderr, code
        self.signals: list[int] = []

    def write_stdin(self, data: bytes) -> None:
        self.stdin += data

    def close_stdin(self) -> None:
        pass

    def stdout_chunks(self) -> Iterator[bytes]:
        for i in range(0, len(self._stdout), 777):  # odd chunking on purpose
            yield self._stdout[i:i + 777]

    def stderr_chunks(self) -> Iterator[bytes]:
        yield self._stderr

    def wait(self) -> int:
        return self._code

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.signals.append(sig)


class FakeSession(Session):
    backend_name = "fake"
    name = "fake-session"
    id = "fake-1"
    root = "/remote/ws"
    state_dir = "/remote/state"
    python = "python3"
    fresh = False

    def __init__(self, process: FakeProcess) -> None:
        self.process = process
        self.argv: list[Sequence[str]] = []

    def exec(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
             pty: PtySpec | None = None) -> Process:
        self.argv.append(list(argv))
        return self.process

    def terminate(self) -> None:
        pass

    def info(self) -> SessionInfo:
        return SessionInfo("fake", self.name, self.id, True)


def collect_reply(members: list[Member], deleted: Sequence[str] = ()) -> bytes:
    tar = make_tar(members) if members else b""
    return encode_header({"op": "collect", "deleted": list(deleted), "files": len(members),
                          "bytes": 0, "over_cap": False}) + tar


@pytest.fixture
def trap(tmp_path: Path, workspace: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    os.symlink(outside, workspace / "link-out")  # a user's own link out of the workspace
    write_tree(workspace, {"keep.txt": "mine"})
    return outside


def back(workspace: Path, tmp_path: Path, process: FakeProcess,
         max_bytes: int = 1 << 20) -> tuple[object, FakeSession]:
    session = FakeSession(process)
    sync = WorkspaceSync(workspace, session, tmp_path / "cache", max_bytes=max_bytes)
    return sync.back(), session


def test_hostile_archive_is_refused_and_reported(workspace: Path, tmp_path: Path,
                                                 trap: Path) -> None:
    before = snapshot(workspace)
    members: list[Member] = [
        ("f", "/etc/evil", "x"), ("f", "../outside/victim", "x"), ("f", "link-out/victim", "x"),
        ("l", "abs", "/etc/passwd"), ("l", "up", "../outside"), ("l", "via", "link-out/victim"),
        ("h", "hard", "keep.txt"), ("c", "dev", ""), ("p", "fifo", ""),
        ("f", "node_modules/x.js", "x"), ("f", ".git/config", "x"),
        ("f", "fine.txt", "accepted"),
    ]
    report, session = back(workspace, tmp_path, FakeProcess(collect_reply(
        members, deleted=["link-out/victim", "../outside/victim", "/etc/passwd"])))
    refused = {r.path for r in report.refused}  # type: ignore[attr-defined]
    assert refused == {m[1] for m in members[:-1]} | {"link-out/victim", "../outside/victim",
                                                      "/etc/passwd"}
    assert report.applied == ["fine.txt"]  # type: ignore[attr-defined]
    assert (trap / "victim").read_text() == "precious" and os.listdir(trap) == ["victim"]
    after = snapshot(workspace)
    assert after.pop("fine.txt")[2] == b"accepted" and after == before
    assert bytes(session.process.stdin) == b"ack\n"
    for dirpath, _, filenames in os.walk(workspace):
        for name in filenames:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            assert not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode))


def test_malformed_stream_raises_and_applies_nothing(workspace: Path, tmp_path: Path) -> None:
    write_tree(workspace, {"a": "1"})
    good = collect_reply([("f", "a", "2"), ("f", "b", "x" * 50_000)])
    process = FakeProcess(good[:20_000])  # cut mid-archive
    with pytest.raises(SyncError) as err:
        back(workspace, tmp_path, process)
    assert "unusable stream" in err.value.one_line()
    assert snapshot(workspace) == {"a": ("f", (workspace / "a").stat().st_mode & 0o777, b"1")}
    assert b"ack" not in process.stdin and process.signals


@pytest.mark.parametrize("mtime", [2.0 ** 62, 9_223_372_037.0, 1e30, -1.0])
def test_a_time_past_what_a_manifest_holds_is_a_malformed_stream(
        workspace: Path, tmp_path: Path, mtime: float) -> None:
    """A PAX mtime whose nanoseconds overflow 64 bits (year 2262 and on) or before 1970:
    the one line of any unusable stream, nothing applied, never a traceback."""
    write_tree(workspace, {"a": "1"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("late.txt")
        info.size, info.mtime = 2, mtime
        tar.addfile(info, io.BytesIO(b"hi"))
    reply = encode_header({"op": "collect", "deleted": [], "files": 1, "bytes": 2,
                           "over_cap": False}) + buf.getvalue()
    process = FakeProcess(reply)
    with pytest.raises(SyncError) as err:
        back(workspace, tmp_path, process)
    assert "unusable stream" in err.value.one_line()
    assert sorted(os.listdir(workspace)) == ["a"] and b"ack" not in process.stdin


def test_remote_exceeding_its_own_header_is_stopped_at_the_cap(workspace: Path,
                                                               tmp_path: Path) -> None:
    process = FakeProcess(collect_reply([("f", "a", "x" * 3000), ("f", "b", "y" * 3000)]))
    with pytest.raises(SyncError):
        back(workspace, tmp_path, process, max_bytes=4000)
    assert os.listdir(workspace) == []


def test_agent_failure_raises_sync_error_with_one_line_tail(workspace: Path,
                                                            tmp_path: Path) -> None:
    stderr = b"Traceback (most recent call last):\n  File x\nPermissionError: [Errno 13] denied\n"
    with pytest.raises(SyncError) as err:
        back(workspace, tmp_path, FakeProcess(b"", stderr=stderr, code=1))
    line = err.value.one_line()
    assert "\n" not in line and "PermissionError: [Errno 13] denied" in line
    assert "exited with 1" in line


def test_real_agent_failure_surfaces_its_stderr(workspace: Path, session: Session,
                                               tmp_path: Path) -> None:
    write_tree(workspace, {"a": "1"})
    state = Path(session.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / "sync").write_text("a file where the agent wants a folder")
    with pytest.raises(SyncError) as err:
        WorkspaceSync(workspace, session, tmp_path / "cache").up()
    assert "\n" not in err.value.one_line() and "sync up failed" in err.value.one_line()
    assert "File exists" in err.value.one_line() or "Not a directory" in err.value.one_line()


def test_progress_never_imports_rich_off_a_tty(workspace: Path, tmp_path: Path) -> None:
    write_tree(workspace, {f"f{i}": "x" for i in range(50)})
    code = (
        "import sys; from pathlib import Path\n"
        "from modal_offload.backends._base import SessionSpec\n"
        "from modal_offload.backends.local import LocalBackend\n"
        "from modal_offload.sync.client import WorkspaceSync\n"
        "from modal_offload.sync import progress\n"
        "progress.LARGE_FILES = 1\n"
        f"ws, base = Path({str(workspace)!r}), Path({str(tmp_path)!r})\n"
        "s = LocalBackend(root=base / 'sb').open_session(SessionSpec(name='p', workspace=ws))\n"
        "r = WorkspaceSync(ws, s, base / 'c', progress=True).up()\n"
        "print(r.files_sent, 'rich' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, stdin=subprocess.DEVNULL)
    assert out.stdout.split() == ["50", "False"] and out.stderr == ""


def test_progress_bar_on_a_tty_for_a_large_first_sync(
        workspace: Path, session: Session, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from modal_offload.sync import progress

    shown: list[int] = []
    real = progress.byte_bar

    def spy(total: int, description: str) -> object:
        shown.append(total)
        return real(total, description)

    monkeypatch.setattr(progress, "_tty", lambda: True)
    monkeypatch.setattr(progress, "byte_bar", spy)
    monkeypatch.setattr(progress, "LARGE_FILES", 10)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    write_tree(workspace, {f"f{i}": "x" for i in range(20)})
    sync = WorkspaceSync(workspace, session, tmp_path / "cache", progress=True)
    sync.up()
    assert shown == [20 + 20 * 1024]
    (workspace / "f0").write_text("changed")
    sync.up()  # not a first sync: no bar
    assert len(shown) == 1
