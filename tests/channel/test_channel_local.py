"""The session channel on the local backend, in-process: what a command's exit says about
the remote tree, and the fallback to a plain exec when no agent can start."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modal_offload.backends._base import Process, PtySpec, Session, SessionSpec
from modal_offload.backends.local import LocalBackend
from modal_offload.channel import client, frames
from modal_offload.channel.agent import Agent
from modal_offload.channel.client import Channel, ChannelProcess, ChannelSession
from modal_offload.errors import SyncError
from modal_offload.sync import remote
from modal_offload.sync.channel import AgentRun, agent_paths, state_dir
from modal_offload.sync.client import WorkspaceSync
from tests.host.helpers import wait_for


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ChannelSession, WorkspaceSync]]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a\n")
    inner = LocalBackend(tmp_path / "sb").open_session(SessionSpec(name="mo-ch", workspace=ws))
    session = ChannelSession(inner, Channel(inner))
    yield session, WorkspaceSync(ws, session, tmp_path / "cache")
    session.channel.close()


def run(session: Session, *argv: str) -> tuple[Process, int, bytes]:
    process = session.exec(list(argv), cwd=session.root, env={})
    process.close_stdin()
    out = b"".join(process.stdout_chunks())
    for _ in process.stderr_chunks():
        pass
    return process, process.wait(), out


def changed(session: Session, *argv: str) -> bool | None:
    process, _, _ = run(session, *argv)
    assert isinstance(process, ChannelProcess)
    return process.tree_changed


def plant_ghost(session: Session, like: str) -> None:
    """A ghost in the remote's manifest: a walk drops it (reporting it deleted), a rescan
    of the changed paths never looks at it, so a test sees which of the two ran."""
    state = Path(state_dir(session))
    manifest = remote.load_manifest(state)
    assert manifest is not None
    manifest.entries["ghost.txt"] = manifest.entries[like]
    remote.save_manifest(state, manifest)

def test_exit_says_whether_the_tree_changed(pair: tuple[ChannelSession, WorkspaceSync]) -> None:
    session, sync = pair
    sync.up()
    assert changed(session, "true") is True  # nothing known before the first collect
    sync.back()
    assert changed(session, "true") is False
    assert changed(session, "sh", "-c", "echo x > made.txt") is True
    assert changed(session, "true") is True  # still: no collect took it yet
    assert sync.back(remote_changed=True).applied == ["made.txt"]
    assert changed(session, "true") is False
    # Changes that did not go over the channel are seen too (inotify, not bookkeeping).
    plain = session.inner.exec(["sh", "-c", "echo y > sub.txt"], cwd=session.root, env={})
    plain.close_stdin()
    assert plain.wait() == 0
    assert changed(session, "true") is True
    assert sync.back().applied == ["sub.txt"]
    assert changed(session, "true") is False


def test_a_collect_that_fails_leaves_the_tree_changed(
        pair: tuple[ChannelSession, WorkspaceSync]) -> None:
    session, sync = pair
    sync.up()
    sync.back()
    assert changed(session, "sh", "-c", "echo x > lost.txt") is True
    session.before_collect()  # a collect starts, then never acknowledges (client died)
    assert changed(session, "true") is True  # so the changes are offered again
    assert sync.back(remote_changed=True).applied == ["lost.txt"]


def test_no_agent_falls_back_to_a_plain_exec(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    inner = LocalBackend(tmp_path / "sb").open_session(SessionSpec(name="mo-ch", workspace=ws))
    inner.python = str(tmp_path / "no-python")  # the agent cannot start
    session = ChannelSession(inner, Channel(inner))
    process, code, out = run(session, "sh", "-c", "echo fine; exit 3")
    assert (code, out) == (3, b"fine\n") and not isinstance(process, ChannelProcess)
    assert run(session, "echo", "again")[1:] == (0, b"again\n")


def test_hinted_collects_miss_nothing(pair: tuple[ChannelSession, WorkspaceSync],
                                      tmp_path: Path) -> None:
    """After the first collect the agent hands each collect the changed paths (no walk):
    new folders, deletions, edits, and what an unfinished collect was told all arrive."""
    session, sync = pair
    ws = sync.root
    sync.up()
    sync.back()
    assert changed(session, "true") is False
    plant_ghost(session, like="a.txt")
    script = ("mkdir -p new/deep && echo 1 > new/deep/one.txt && echo 2 > new/two.txt"
              " && rm a.txt && echo b > b.txt")
    assert changed(session, "sh", "-c", script) is True
    back = sync.back(remote_changed=True)
    assert sorted(back.applied) == ["b.txt", "new", "new/deep", "new/deep/one.txt",
                                    "new/two.txt"] and back.deleted == ["a.txt"]
    # Over the cap: nothing is committed, and the next collect is still told about it.
    run(session, "sh", "-c", "head -c 5000 /dev/zero > big.bin")
    small = WorkspaceSync(ws, session, tmp_path / "cache", max_bytes=1000)
    assert small.back(remote_changed=True).over_cap
    run(session, "sh", "-c", "echo c > c.txt")
    assert sorted(sync.back(remote_changed=True).applied) == ["big.bin", "c.txt"]
    assert changed(session, "true") is False


def test_an_idle_channel_closes_and_reopens(tmp_path: Path) -> None:
    """A running agent keeps a sandbox from idling out (and billing on): unused, the
    channel closes; the next command opens a new one and still runs over it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    inner = LocalBackend(tmp_path / "sb").open_session(SessionSpec(name="mo-ch", workspace=ws))
    session = ChannelSession(inner, Channel(inner, idle_seconds=0.5))
    process, code, _ = run(session, "sleep", "1")  # longer than idle: busy is not idle
    assert code == 0 and isinstance(process, ChannelProcess)
    first = session.channel.current()
    assert first is not None
    agent = first.agent
    assert wait_for(lambda: session.channel.current() is None, 10)
    assert agent.wait() == 0  # it exited on its own, on EOF
    process, code, out = run(session, "echo", "back")
    assert (code, out) == (0, b"back\n") and isinstance(process, ChannelProcess)
    assert session.channel.opened == 2
    session.channel.close()


def test_a_command_the_agent_does_not_acknowledge_runs_once_the_plain_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel that cannot deliver a command (here: its agent is stopped, as behind a
    network that went away) is given up within the ack deadline; the command runs once
    through the backend's exec, and the host is told the service is unreachable."""
    monkeypatch.setattr(client, "ACK_SECONDS", 0.5)
    monkeypatch.setattr(client, "ACK_GRACE", 0.2)
    ws = tmp_path / "ws"
    ws.mkdir()
    inner = LocalBackend(tmp_path / "sb").open_session(SessionSpec(name="mo-ch", workspace=ws))
    told: list[str] = []
    session = ChannelSession(inner, Channel(inner, on_unreachable=told.append))
    assert isinstance(run(session, "true")[0], ChannelProcess)
    link = session.channel.current()
    assert link is not None
    os.kill(int(link.hello["pid"]), signal.SIGSTOP)
    try:
        process, code, _ = run(session, "sh", "-c", "echo once >> count")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(link.hello["pid"]), signal.SIGCONT)
    assert code == 0 and not isinstance(process, ChannelProcess)
    assert link.dead.is_set() and len(told) == 1 and "acknowledge" in told[0]
    assert link.agent.wait() != 0  # killed: it will not start the command late either
    assert (Path(inner.root) / "count").read_text() == "once\n"
    session.channel.close()


def test_the_agent_refuses_a_command_that_arrives_after_its_deadline(tmp_path: Path) -> None:
    """The host gave up on it and ran it another way: starting it now would run it twice."""
    (tmp_path / "state").mkdir()
    agent = Agent(tmp_path, tmp_path / "state", out_fd=os.open(os.devnull, os.O_WRONLY))
    argv = ["sh", "-c", "echo ran >> count"]
    agent.handle(frames.EXEC, 1, json.dumps(
        {"argv": argv, "cwd": ".", "env": {}, "before": time.time() - 1}).encode())
    assert agent.child(1) is None and not (tmp_path / "count").exists()
    agent.handle(frames.EXEC, 2, json.dumps(
        {"argv": argv, "cwd": ".", "env": {}, "before": time.time() + 60}).encode())
    assert wait_for(lambda: (tmp_path / "count").exists()
                    and (tmp_path / "count").read_text() == "ran\n", 10)


def test_a_terminal_command_runs_on_the_agents_own_terminal(tmp_path: Path) -> None:
    """A PTY command goes over the channel (no backend exec): the size and TERM given,
    one merged stream, a typed Ctrl-C as a byte, exit codes as on a terminal."""
    ws = tmp_path / "ws"
    ws.mkdir()
    inner = LocalBackend(tmp_path / "sb").open_session(SessionSpec(name="mo-pty", workspace=ws))
    session = ChannelSession(inner, Channel(inner))
    try:
        assert session.channel.link() is not None
        execs = _exec_count(tmp_path / "sb")
        spec = PtySpec(rows=33, cols=101, term="xterm-256color")
        process = session.exec(["sh", "-c", 'stty size; echo "$TERM"; echo err >&2; exit 7'],
                               cwd=session.root, env={}, pty=spec)
        assert isinstance(process, ChannelProcess)
        out = b"".join(process.stdout_chunks())
        assert list(process.stderr_chunks()) == []  # the terminal merges the streams
        assert process.wait() == 7
        assert out == b"33 101\r\nxterm-256color\r\nerr\r\n"
        # Ctrl-C is a byte on the terminal; its line discipline makes it SIGINT.
        sleeper = session.exec(["sh", "-c", "echo ready; exec sleep 30"], cwd=session.root,
                               env={}, pty=spec)
        chunks = sleeper.stdout_chunks()
        assert next(chunks).startswith(b"ready")
        sleeper.write_stdin(b"\x03")
        assert sleeper.wait() == 128 + signal.SIGINT
        missing = session.exec(["no-such-program"], cwd=session.root, env={}, pty=spec)
        assert b"command not found" in b"".join(missing.stdout_chunks())
        assert missing.wait() == 127
        assert _exec_count(tmp_path / "sb") == execs  # all over the channel's one exec
    finally:
        session.channel.close()


def test_a_resize_reaches_the_agents_terminal_clamped_to_what_it_holds(
        tmp_path: Path) -> None:
    """RESIZE frames: the program on the agent's terminal gets SIGWINCH and the new size;
    sizes a winsize cannot hold are clamped (never a crash of the agent)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    inner = LocalBackend(tmp_path / "sb").open_session(SessionSpec(name="mo-rz", workspace=ws))
    session = ChannelSession(inner, Channel(inner))
    program = "\n".join([
        "import os, signal, sys",
        "say = lambda: os.write(1, b'%d %d\\n' % os.get_terminal_size(0)[::-1])",
        "signal.signal(signal.SIGWINCH, lambda *_: say())",
        "say()",
        "sys.stdin.readline()"])
    try:
        process = session.exec([sys.executable, "-c", program], cwd=session.root, env={},
                               pty=PtySpec(rows=24, cols=80, term="xterm"))
        assert isinstance(process, ChannelProcess)
        chunks = process.stdout_chunks()
        seen = b""
        for size, shown in (((40, 120), b"40 120"), ((0, 10 ** 6), b"1 65535")):
            while b"\n" not in seen:
                seen += next(chunks)
            assert process.resize(*size)
            seen = b""
            while shown not in seen:
                seen += next(chunks)
        process.write_stdin(b"\r")
        assert process.wait() == 0
        assert session.channel.link() is not None  # the agent lives on
    finally:
        session.channel.close()


def _exec_count(sandboxes: Path) -> int:
    (meta,) = sandboxes.glob("*/session.json")
    return int(json.loads(meta.read_text())["exec_count"])


class _RecordedWrites(Process):
    """The agent's exec, recording the host's writes to it (each is one backend call)."""

    def __init__(self, inner: Process) -> None:
        self.inner = inner
        self.writes: list[list[tuple[bytes, int]]] = []  # (kind, id) of each write's frames

    def write_stdin(self, data: bytes) -> None:
        self.writes.append([(kind, cid) for kind, cid, _ in frames.read_frames([data])])
        self.inner.write_stdin(data)

    def close_stdin(self) -> None:
        self.inner.close_stdin()

    def stdout_chunks(self) -> Iterator[bytes]:
        return self.inner.stdout_chunks()

    def stderr_chunks(self) -> Iterator[bytes]:
        return self.inner.stderr_chunks()

    def wait(self) -> int:
        return self.inner.wait()

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.inner.signal(sig)


def _drained(process: Process) -> tuple[int, bytes]:
    process.close_stdin()
    out = b"".join(process.stdout_chunks())
    for _ in process.stderr_chunks():
        pass
    return process.wait(), out


def test_a_sync_up_and_its_command_leave_in_one_write(
        pair: tuple[ChannelSession, WorkspaceSync]) -> None:
    """Pipelining: the apply, its input and the command that needs the files are one write;
    the agent starts the command once the apply succeeded, so it sees the new content."""
    session, sync = pair
    sync.up()
    sync.back()
    link = session.channel.current()
    assert link is not None
    recorded = _RecordedWrites(link.agent)
    link.agent = recorded
    (sync.root / "a.txt").write_text("edited\n")
    starts: list[Callable[[], Process]] = []
    report = sync.up(then=lambda apply, collect: starts.append(session.exec_after(
        apply, ["cat", "a.txt"], cwd=session.root, env={}, collect=collect)))
    assert report.files_sent == 1
    process = starts[0]()
    assert isinstance(process, ChannelProcess)
    (write,) = [w for w in recorded.writes if (frames.EXEC, process.cid) in w]
    execs = [cid for kind, cid in write if kind == frames.EXEC]
    assert len(execs) == 2 and execs[1] == process.cid  # the apply's, then the command's
    assert (frames.STDIN, execs[0]) in write and (frames.STDIN_EOF, execs[0]) in write
    assert _drained(process) == (0, b"edited\n")


def test_a_command_sent_after_a_failed_apply_never_starts(
        pair: tuple[ChannelSession, WorkspaceSync]) -> None:
    """The command rides in the apply's write, but the agent starts it only if the apply
    succeeded: otherwise it answers "skipped", and the sync up fails as it always did."""
    session, sync = pair
    sync.up()
    run_ = AgentRun(session, ["apply", *agent_paths(session)], "sync up")
    run_.process.write_stdin(b"not a sync stream\n")
    run_.process.close_stdin()
    start = session.exec_after(run_.process, ["sh", "-c", "echo ran > ran.txt"],
                               cwd=session.root, env={})
    for _ in run_.process.stdout_chunks():
        pass
    with pytest.raises(SyncError):
        run_.finish()
    process = start()
    assert isinstance(process, ChannelProcess)
    assert _drained(process) == (client.LOST_EXIT, b"")
    assert process.skipped is not None and "failed" in process.skipped
    assert not (Path(session.root) / "ran.txt").exists()


def test_the_collect_asked_for_with_the_command_follows_its_exit(
        pair: tuple[ChannelSession, WorkspaceSync]) -> None:
    """Sync back without a round trip: the agent runs the collect right after the exit when
    the tree changed; one that is dropped unacknowledged commits nothing (nothing lost)."""
    session, sync = pair
    sync.up()
    sync.back()

    def command(script: str) -> ChannelProcess:
        process = session.exec_after(None, ["sh", "-c", script], cwd=session.root, env={},
                                     collect=sync.collect_args())()
        assert isinstance(process, ChannelProcess)
        assert _drained(process)[0] == 0
        return process

    unchanged = command("true")
    assert unchanged.tree_changed is False and unchanged.prepared_collect is None
    made = command("echo x > made.txt")
    assert made.tree_changed is True and made.prepared_collect is not None
    assert sync.back(True, made.prepared_collect).applied == ["made.txt"]
    assert (sync.root / "made.txt").read_text() == "x\n"
    assert changed(session, "true") is False
    dropped = command("echo y > more.txt")
    assert dropped.prepared_collect is not None
    dropped.prepared_collect.close_stdin()  # as the gateway does when it cannot take it
    assert sync.back(True).applied == ["more.txt"]
    assert changed(session, "true") is False


def _fresh_pair(tmp_path: Path, remote_only: bool) -> tuple[ChannelSession, WorkspaceSync]:
    ws = tmp_path / "ws"
    for rel in ("pkg/sub/x.txt", "pkg/y.txt", "top.txt"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(f"{rel}\n")
    inner = LocalBackend(tmp_path / "sb").open_session(SessionSpec(name="mo-ch", workspace=ws))
    session = ChannelSession(inner, Channel(inner))
    if remote_only:  # made remotely before any sync (a reused sandbox, a lost baseline)
        run(session, "sh", "-c", "mkdir -p old && echo r > old/remote-only.txt")
    return session, WorkspaceSync(ws, session, tmp_path / "cache")


def test_the_first_collect_after_a_first_sync_rescans_only_what_changed(
        tmp_path: Path) -> None:
    """A full apply into an empty remote tree: the agent's watcher watched the folders it
    moved in before they appeared, so the collect after the first command rescans the
    paths it names, no walk; everything the command did still comes back."""
    session, sync = _fresh_pair(tmp_path, remote_only=False)
    try:
        sync.up()
        plant_ghost(session, like="top.txt")
        script = ("echo edited > pkg/sub/x.txt && echo n > pkg/sub/new.txt"
                  " && chmod 700 pkg && rm pkg/y.txt")
        assert changed(session, "sh", "-c", script) is True
        back = sync.back(remote_changed=True)
        assert sorted(back.applied) == ["pkg", "pkg/sub/new.txt", "pkg/sub/x.txt"]
        assert back.deleted == ["pkg/y.txt"]
        assert (sync.root / "pkg" / "sub" / "x.txt").read_text() == "edited\n"
        assert (sync.root / "pkg").stat().st_mode & 0o777 == 0o700
        after = remote.load_manifest(Path(state_dir(session)))
        assert after is not None and "ghost.txt" in after.entries
        assert changed(session, "true") is False
    finally:
        session.channel.close()


def test_a_first_sync_into_a_tree_holding_more_walks_back(tmp_path: Path) -> None:
    """What the remote tree held before the full apply is not in its manifest and the
    watcher never saw it made: the next collect walks and offers it back."""
    session, sync = _fresh_pair(tmp_path, remote_only=True)
    try:
        sync.up()
        assert changed(session, "true") is True
        back = sync.back(remote_changed=True)
        assert sorted(back.applied) == ["old", "old/remote-only.txt"]
        assert (sync.root / "old" / "remote-only.txt").read_text() == "r\n"
    finally:
        session.channel.close()
