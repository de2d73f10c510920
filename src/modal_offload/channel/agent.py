"""The remote end of the session channel, run once per session by the host as
`python -I ... modal_offload.channel.agent --root R --state S` (Session.module_argv).

It reads frames (frames.py) on stdin and writes frames on stdout:
- EXEC {argv, cwd (relative to R), env} starts a command as its child, in a new session (so
  a signal reaches its whole group), with pipes; EXEC {sync: args} runs the sync agent
  (sync/remote.py) as a thread instead, with the same frames. STARTED {pid} follows, then
  STDOUT/STDERR data, their EOFs, and EXIT {code, changed} once the command ended.
- `changed` answers the question sync back asks after every command, without a walk or an
  exec: False only when the inotify watcher saw nothing change in R since the last MARK
  (sent right before a collect) and that collect's stamp still stands. The kernel queues
  an inotify event inside the writing syscall, so every write the command finished before
  it exited is counted (host/watcher.py). Without inotify, `changed` is always True.
  MARK also leaves the collect a list of the paths that changed, so it rescans only those
  instead of walking the tree (issue 21; sync/remote.py, "hint"). Before the first MARK
  nothing is known, except after a full apply (a first sync) into a tree that held
  nothing else: the apply runs in this process and tells the watcher what it moves in
  (`begin`/`moving`/`end`), so even the first collect rescans only what changed.
- EXEC {..., pty: {rows, cols, term, colorterm}} runs the command on a new pseudo-terminal
  of ours (as the backends' own PTY exec, backends/_pty.py): its output is STDOUT (the
  terminal merges both streams), STDIN is the raw keystrokes (Ctrl-C is the byte, which
  the line discipline makes SIGINT), STDIN_EOF only stops our writing (a terminal has no
  EOF of its own). HELLO says whether this sandbox can open one (`pty`).
- Pipelining (issue 17): EXEC {..., after: ID} starts only once the sync task ID ended
  with 0 (QUEUED is its acknowledgement meanwhile); when that sync failed, or is unknown,
  the command is not started: EXIT {skipped: why} and no STARTED. So the client sends a
  sync up's apply and the command it is for in one write. EXEC {..., collect: {cid, args,
  token}} asks for the sync back in the same write: right after the command's exit, when
  the tree changed, the agent marks with `token` and runs the collect as command `cid`
  (else it answers `cid` skipped), and its stream follows the EXIT without a round trip.
- On EOF of stdin (the host closed the channel, or died) running commands are left to
  finish, as they would after a plain exec whose client went away (their output has
  nowhere to go; their files stay for the next sync back); then the agent exits. Stopping
  a command is the host's decision, sent as SIGNAL (tests/host/test_host_exec.py
  `test_killing_the_host_mid_command`).

Standard library plus this package's sync modules, as the sync agent (sync/remote.py).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import frames

_READ = 64 * 1024
OUT_LIMIT = 4 << 20  # bytes queued for the host before the commands' pipes wait
LINGER_SECONDS = 0.001  # how long a write waits for the frames that follow it
# How long, and up to how many bytes, output is held while frames that belong together are
# still being made (a command's EXIT and the collect that follows it): each further write
# is one more message on the output stream, half a round trip each on a remote backend.
HOLD_SECONDS = 0.5
HOLD_BYTES = 1 << 20
# What was queued before a hold began (a sync up's reply, typically) waits at most this
# long for it: the host needs that reply to save its baseline, which then overlaps a slow
# collect (a walk) instead of following it (issue 21); a fast collect still leaves with it.
UNHELD_SECONDS = 0.03
KEEP_OUTCOMES = 64  # sync tasks whose exit status a later EXEC may still depend on
SETTLE_SECONDS = 0.5  # how long an EXIT waits for a sync holding the lock (`_settled`)
MARK_WAIT_SECONDS = 5.0  # how long a MARK does
CONSUMER = "collect"


class _Child:
    def __init__(self, agent: Agent, cid: int, popen: subprocess.Popen[bytes] | _Task | _OnPty,
                 stdin: queue.SimpleQueue[bytes | None] | None = None,
                 collect: dict[str, Any] | None = None,
                 release: Callable[[], None] | None = None) -> None:
        self.agent, self.cid, self.popen = agent, cid, popen
        # Input that came while the command waited for its sync (`after`) is kept.
        self.stdin: queue.SimpleQueue[bytes | None] = stdin or queue.SimpleQueue()
        self.collect = collect
        self._release = release  # the output hold taken for us, let go once stdout ended
        if isinstance(popen, _Task) and agent.hungup.is_set():
            self.stdin.put(None)  # nobody left to acknowledge a sync: it commits nothing
        self._left = 3  # stdout EOF, stderr EOF, exit: then the id may be forgotten
        self._left_lock = threading.Lock()
        # Known to the agent before anything of it reaches the host: the host may answer
        # (input, an ack) as soon as it sees our output.
        agent.adopt(cid, self)
        agent.send(frames.encode_json(frames.STARTED, cid, {"pid": popen.pid}))
        for target, name in ((self._feed, "stdin"), (self._wait, "wait")):
            threading.Thread(target=target, name=f"{name}-{cid}", daemon=True).start()
        for pipe, kind, eof in ((popen.stdout, frames.STDOUT, frames.STDOUT_EOF),
                                (popen.stderr, frames.STDERR, frames.STDERR_EOF)):
            threading.Thread(target=self._pump, args=(pipe, kind, eof), daemon=True).start()

    def _pump(self, pipe: Any, kind: bytes, eof: bytes) -> None:
        fd = pipe.fileno()
        try:
            while data := os.read(fd, _READ):
                self.agent.send(frames.encode(kind, self.cid, data))
        except OSError:
            pass
        finally:
            pipe.close()
            self.agent.send(frames.encode(eof, self.cid))
            if kind == frames.STDOUT and self._release is not None:
                self._release()  # a collect's archive is all out: let it go in one write
            self._done()

    def _done(self) -> None:
        with self._left_lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self.agent.forget(self.cid)

    def _feed(self) -> None:
        stdin = self.popen.stdin
        assert stdin is not None
        try:
            while (data := self.stdin.get()) is not None:
                stdin.write(data)
                stdin.flush()
        except (OSError, ValueError):
            pass  # the command closed its stdin: the rest is not wanted
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _wait(self) -> None:
        code = self.popen.wait()
        code = 128 - code if code < 0 else code
        release: Callable[[], None] | None = self.agent.hold()
        try:
            changed = self.agent.tree_changed()
            info: dict[str, Any] = {"code": code, "changed": changed}
            collect = self.collect
            if collect is not None:
                info["collect"] = changed
            self.agent.send(frames.encode_json(frames.EXIT, self.cid, info))
            if isinstance(self.popen, _Task):
                self.agent.settle(self.cid, code)
            if collect is not None:
                ccid = int(collect.get("cid", 0))
                if changed and not self.agent.hungup.is_set():
                    self.agent.mark(str(collect.get("token", "")))
                    self.agent.start_sync(ccid, [str(a) for a in collect.get("args", [])],
                                          release)
                    release = None  # the collect's stdout pump lets it go
                else:
                    self.agent.skip(ccid, "nothing changed")
        finally:
            if release is not None:
                release()
        self._done()

    def signal(self, sig: int) -> None:
        if isinstance(self.popen, _Task):
            self.popen.stop()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


class _OnPty:
    """A command on a pseudo-terminal, with the pipes and methods of a Popen that _Child
    uses: stdout reads the master side (EIO once every slave closed: the end), stdin
    writes to it, stderr is empty."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str],
                 spec: dict[str, Any]) -> None:
        from ..backends._pty import open_pty, spawn_on_pty

        master, slave = open_pty(int(spec.get("rows", 24)), int(spec.get("cols", 80)))
        for key, name in (("term", "TERM"), ("colorterm", "COLORTERM")):
            if spec.get(key):
                env[name] = str(spec[key])
        try:
            self._popen = spawn_on_pty(argv, cwd=cwd, env=env, slave=slave)
        except BaseException:
            os.close(master)
            raise
        self.pid = self._popen.pid
        self.stdin = os.fdopen(os.dup(master), "wb")
        self.stdout = os.fdopen(master, "rb", buffering=0)
        r_err, w_err = os.pipe()
        os.close(w_err)
        self.stderr = os.fdopen(r_err, "rb", buffering=0)

    def wait(self) -> int:
        return self._popen.wait()

    def resize(self, rows: int, cols: int) -> None:
        from ..backends._pty import set_size

        # The kernel signals SIGWINCH to the terminal's foreground group on a new size.
        with contextlib.suppress(OSError, ValueError):  # the terminal already closed
            set_size(self.stdout.fileno(), rows, cols)


def pty_works() -> bool:
    """Whether this sandbox can open a pseudo-terminal (/dev/ptmx and devpts)."""
    try:
        master, slave = os.openpty()
    except OSError:
        return False
    os.close(master)
    os.close(slave)
    return True


class _Task:
    """A sync agent command (sync/remote.py) run as a thread of this process, with the
    pipes and the few methods of a Popen that _Child uses: a sync costs no Python start
    (~50-150 ms each on a small machine, twice per edited-file command)."""

    pid = 0  # no process group: a signal closes its input instead (`signal`)

    def __init__(self, args: list[str]) -> None:
        from ..sync import remote

        self._parsed = remote.parse(args)
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        self.stdin = os.fdopen(w_in, "wb")
        self.stdout = os.fdopen(r_out, "rb")
        self.stderr = os.fdopen(r_err, "rb")
        self._code = 1
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(r_in, w_out, w_err), daemon=True,
                         name="sync-task").start()

    def _run(self, r_in: int, w_out: int, w_err: int) -> None:
        from ..sync import remote

        with os.fdopen(r_in, "rb") as i, os.fdopen(w_out, "wb") as o, \
                os.fdopen(w_err, "w") as e:
            try:
                self._code = remote.run(self._parsed, i, o, e, close_stdout=o.close)
            except BaseException as exc:  # as an uncaught exception ends a process: 1
                print(f"modal-offload sync agent: {exc.__class__.__name__}: {exc}", file=e)
                self._code = 1
        self._done.set()

    def wait(self) -> int:
        self._done.wait()
        return self._code

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stdin.close()  # the sync sees EOF and ends; nothing was acknowledged


class Agent:
    def __init__(self, root: Path, state: Path, out_fd: int = 1) -> None:
        self.root, self.state, self.out_fd = root, state, out_fd
        self._out: list[bytes] = []
        self._out_size = 0
        self._out_cv = threading.Condition()
        self._holds = 0
        self._unheld = 0  # _out[:_unheld] was queued while no hold was taken
        threading.Thread(target=self._write_out, name="out", daemon=True).start()
        self._lock = threading.Lock()
        self.children: dict[int, _Child] = {}
        # Sync tasks' exit status (None: running), for EXECs that come `after` one; and
        # those EXECs waiting, by the task they wait for.
        self.outcomes: dict[int, int | None] = {}
        self.waiting: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        self.queued: dict[int, queue.SimpleQueue[bytes | None]] = {}  # their input so far
        # Our stdin ended: the host is gone. A sync task (a collect waiting for its ack
        # holds the session's sync lock) then ends at once; commands run on.
        self.hungup = threading.Event()
        # Nothing is known about changes made before we watched: the first answer is
        # "changed" until a collect (MARK) starts from a known state.
        self.trusted = False
        self.last_frame = time.monotonic()
        self.last_token: str | None = None
        self.rules_seen: int | None = -1  # mtime of the rules the watcher was built with
        self._fresh = False  # a full apply runs into a tree holding nothing else (`begin`)
        self.watcher = self._watcher()

    def _watcher(self) -> Any:
        try:
            from ..host.watcher import Watcher
            from ..sync.remote import load_rules

            watcher = Watcher.create(self.root, lambda: load_rules(self.root, self.state))
        except Exception:  # any trouble only costs a walk per command
            return None
        if watcher is not None:
            watcher.take(CONSUMER)
        return watcher

    # ------------------------------------------------------------------ output
    def send(self, data: bytes) -> None:
        """Queue `data` for the host; waits while too much is queued (backpressure)."""
        with self._out_cv:
            while self._out_size > OUT_LIMIT:
                self._out_cv.wait()
            self._out.append(data)
            self._out_size += len(data)
            if not self._holds:
                self._unheld = len(self._out)
            self._out_cv.notify_all()

    def hold(self) -> Callable[[], None]:
        """Keep output back (up to HOLD_SECONDS / HOLD_BYTES) until the returned function
        is called (once): frames made in a sequence leave in one write."""
        with self._out_cv:
            self._holds += 1
        done = threading.Event()

        def release() -> None:
            if not done.is_set():
                done.set()
                with self._out_cv:
                    self._holds -= 1
                    self._out_cv.notify_all()
        return release

    def _write_out(self) -> None:
        # Frames that come together leave together: a fast command's STARTED, EOFs and
        # EXIT are one write, and so one message on a remote backend's output stream,
        # instead of one network hop each.
        while True:
            with self._out_cv:
                while not self._out:
                    self._out_cv.wait()
            time.sleep(LINGER_SECONDS)
            with self._out_cv:
                start = time.monotonic()
                until, unheld_until = start + HOLD_SECONDS, start + UNHELD_SECONDS
                cut = len(self._out)
                while self._holds and self._out_size < HOLD_BYTES \
                        and (left := until - time.monotonic()) > 0:
                    if self._unheld and time.monotonic() >= unheld_until:
                        cut = self._unheld  # the frames from before the hold go now
                        break
                    self._out_cv.wait(min(left, unheld_until - time.monotonic())
                                      if self._unheld else left)
                    cut = len(self._out)
                data = b"".join(self._out[:cut])
                del self._out[:cut]
                self._out_size -= len(data)
                self._unheld = len(self._out) if not self._holds else 0
                self._out_cv.notify_all()
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self.out_fd, view):]
            except OSError:
                pass  # the host is gone; stdin's EOF ends us

    # ------------------------------------------------------------- tree state
    def tree_changed(self) -> bool:
        from ..sync.remote import STAMP_NAME

        if self.watcher is None or not self.trusted or not self._settled():
            return True
        pending = self.watcher.pending(CONSUMER)
        return pending is None or pending > 0 or not (self.state / STAMP_NAME).exists()

    def _settled(self, wait: float = SETTLE_SECONDS) -> bool:
        """Whether no sync holds the session's lock, waiting up to `wait` for one: a
        collect whose client did not wait for its end (sync/client.py) may still be
        committing its stamp. False (still busy) makes the answer "changed"."""
        try:
            fd = os.open(self.state / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            return False
        deadline = time.monotonic() + wait
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.002)
        finally:
            os.close(fd)

    def mark(self, token: str) -> None:
        """A collect is about to scan: what changed so far is its job, handed over as the
        hint `token` (sync/remote.py); until it succeeds (it writes the stamp) the tree
        counts as changed."""
        from ..sync.remote import RULES_NAME, clear_stamp, write_hint

        changed = None
        try:
            rules = (self.state / RULES_NAME).stat().st_mtime_ns
        except OSError:
            rules = None
        if self.watcher is not None and rules != self.rules_seen:
            # The client sent new ignore rules: what we watch may be too little; re-walk.
            self.watcher.reset()
            self.rules_seen = rules
        if self.watcher is not None:
            # Before the first mark nothing is known about earlier changes: walk once.
            taken = self.watcher.take(CONSUMER)
            changed = taken if self.trusted else None
            self.trusted = self.watcher.broken is None
        # After any collect still committing, so its stamp cannot land after we remove
        # it. Bounded: a collect left waiting for a vanished client's ack holds the lock
        # for minutes, and we must not stall every command; then trust nothing until the
        # next mark.
        if not self._settled(MARK_WAIT_SECONDS):
            self.trusted = False
            changed = None
        try:
            clear_stamp(self.state)
            write_hint(self.state, token, self.last_token, changed)
        except OSError:
            pass  # no hint: the collect walks; no stamp: the tree counts as changed
        self.last_token = token

    # ---------------------------------------------- a full apply (remote.ApplyWatch)
    def begin(self, root: Path) -> None:
        """A full apply is about to write into `root` (its rules just written to the
        state). When the tree holds nothing that can ever travel, the manifest the apply
        saves is the whole tree, and the watcher sees every later change, including
        inside the folders it moves in (`moving`): the next collect may then rescan what
        the watcher names instead of walking (issue 21: ~0.5 s at 100,000 files). When
        the tree holds anything else, that collect walks: it must offer those files back,
        and the watcher never saw them being made."""
        from ..sync.names import hard_ignored
        from ..sync.remote import RULES_NAME

        self._fresh = False
        self.trusted = False  # until `end` says otherwise
        if self.watcher is None or root.resolve() != self.root:
            return
        try:
            seen = (self.state / RULES_NAME).stat().st_mtime_ns
        except OSError:
            return
        if seen != self.rules_seen:
            # Watched with other rules: re-walk with these (the tree is about to be judged
            # empty, so what the watcher held before is not needed; if it is not empty,
            # the next collect walks).
            self.watcher.reset()
            self.rules_seen = seen
        if self.watcher.pending(CONSUMER) is None:
            self.watcher.take(CONSUMER)  # recording from now on (idem)
        try:
            with os.scandir(root) as it:
                names = [de.name for de in it]
        except OSError:
            return
        # Only the names no rule can re-include may be there (a file the rules ignore now
        # might be re-included by a rule file this apply writes, unseen). After the
        # watcher records: anything made from now on is an event.
        self._fresh = self.watcher.pending(CONSUMER) is not None and all(
            hard_ignored(name) for name in names) and self.watcher.begin_moves()

    def moving(self, staged: str, rel: str) -> bool:
        return self._fresh and self.watcher is not None and self.watcher.expect_move(staged, rel)

    def end(self, installed: dict[str, Any] | None) -> None:
        from ..sync.manifest import DIR

        if self.watcher is None:
            return
        self.watcher.end_moves()
        if installed is None or not self._fresh:
            self.trusted = False
            return
        # IN_ATTRIB on folders moved in was taken for the apply's own chmod: compare
        # their modes now (any later change is an event again).
        for rel, entry in installed.items():
            if entry.type == DIR:
                try:
                    st = os.lstat(os.path.join(self.root, rel))
                except OSError:
                    self.watcher.note(rel)
                    continue
                if not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o777 != entry.mode:
                    self.watcher.note(rel)
        self.trusted = self.watcher.broken is None and \
            self.watcher.pending(CONSUMER) is not None

    # --------------------------------------------------------------- commands
    def start(self, cid: int, spec: dict[str, Any]) -> None:
        if isinstance(spec.get("sync"), list):
            self.start_sync(cid, [str(a) for a in spec["sync"]])
            return
        collect = spec.get("collect")
        with self._lock:
            stdin = self.queued.get(cid)  # until adopted: see `adopt`
            if isinstance(collect, dict):
                # Its input (the ack, or EOF when the client drops it) may come as soon
                # as the command's EXIT, before the collect is started: kept for it.
                self.queued[int(collect.get("cid", 0))] = queue.SimpleQueue()
        argv = [str(a) for a in spec.get("argv", [])]
        # Relative to the root, which is our working folder (client.ChannelProcess.fits);
        # normalised there, and `..` refused, so it stays inside.
        rel = str(spec.get("cwd") or ".")
        if os.path.isabs(rel) or rel == ".." or rel.startswith("../"):
            rel = "."
        cwd = os.path.join(self.root, rel)
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in dict(spec.get("env", {})).items()})
        pty = spec.get("pty")
        popen: subprocess.Popen[bytes] | _OnPty | None = None
        try:
            os.makedirs(cwd, exist_ok=True)  # as the backends' exec does
            # spawn_on_pty answers a missing program itself (127/126 on the terminal)
            popen = _OnPty(argv, cwd, env, pty) if isinstance(pty, dict) else \
                _spawn(argv, cwd, env)
        except OSError as exc:
            # As a container (and the local backend) would: the shell's conventions.
            code, why = ((126, "permission denied") if isinstance(exc, PermissionError)
                         else (127, "command not found") if isinstance(exc, FileNotFoundError)
                         else (127, exc.strerror or str(exc)))
            popen = _spawn(["sh", "-c", f'echo "$0: $1" >&2; exit {code}',
                            argv[0] if argv else "exec", why], "/", env)
        _Child(self, cid, popen, stdin, collect if isinstance(collect, dict) else None)

    def start_sync(self, cid: int, args: list[str],
                   release: Callable[[], None] | None = None) -> None:
        with self._lock:
            self.outcomes[cid] = None
            while len(self.outcomes) > KEEP_OUTCOMES:
                del self.outcomes[next(iter(self.outcomes))]
            stdin = self.queued.get(cid)  # until adopted: see `adopt`
        try:
            task: subprocess.Popen[bytes] | _Task = _Task(args)
        except BaseException as exc:  # bad arguments (argparse exits): as a process would
            task = _spawn(["sh", "-c", 'echo "modal-offload sync agent: $0" >&2; exit 2',
                           str(exc)], "/", dict(os.environ))
        _Child(self, cid, task, stdin, release=release)

    def after(self, cid: int, spec: dict[str, Any], dep: int) -> None:
        """Start `cid` once sync task `dep` ended with 0; skip it when that failed or is
        not known (refused as late, or long forgotten: nothing says the files are there)."""
        with self._lock:
            outcome = self.outcomes.get(dep, -1)
            if outcome is None:
                self.waiting.setdefault(dep, []).append((cid, spec))
                self.queued[cid] = queue.SimpleQueue()
        if outcome is None:
            self.send(frames.encode_json(frames.QUEUED, cid, {"after": dep}))
        elif outcome == 0:
            self.start(cid, spec)
        else:
            self.skip(cid, f"the sync it depends on failed (exit status {outcome})"
                      if outcome > 0 else "the sync it depends on did not run", spec)

    def settle(self, dep: int, code: int) -> None:
        """Sync task `dep` ended with `code`: start or skip what waited for it."""
        with self._lock:
            if dep in self.outcomes:
                self.outcomes[dep] = code
            waiters = self.waiting.pop(dep, [])
        for cid, spec in waiters:
            if code == 0:
                self.start(cid, spec)
            else:
                self.skip(cid, f"the sync it depends on failed (exit status {code})", spec)

    def skip(self, cid: int, why: str, spec: dict[str, Any] | None = None,
             code: int = 255) -> None:
        """Answer `cid` as never started (no STARTED: the client knows it did not run),
        and the collect it asked for with it."""
        with self._lock:
            self.queued.pop(cid, None)
        self.send(frames.encode(frames.STDOUT_EOF, cid) + frames.encode(frames.STDERR_EOF, cid)
                  + frames.encode_json(frames.EXIT, cid, {"code": code, "skipped": why}))
        collect = (spec or {}).get("collect")
        if isinstance(collect, dict):
            self.skip(int(collect.get("cid", 0)), "its command did not run")

    def _unqueue(self, cid: int) -> dict[str, Any] | None:
        """The spec of `cid` if it still waits for its sync, no longer waiting."""
        with self._lock:
            for dep, waiters in self.waiting.items():
                for item in waiters:
                    if item[0] == cid:
                        waiters.remove(item)
                        if not waiters:
                            del self.waiting[dep]
                        return item[1]
        return None

    def adopt(self, cid: int, child: _Child) -> None:
        """`child` runs as `cid`: input for it goes to it from now on. In one step with
        dropping the queue kept for it meanwhile (the same queue it reads), so no frame
        falls between the two."""
        with self._lock:
            self.children[cid] = child
            self.queued.pop(cid, None)

    def forget(self, cid: int) -> None:
        with self._lock:
            child = self.children.pop(cid, None)
        if child is not None:
            child.stdin.put(None)  # its input feeder ends too (it may wait for EOF still)

    def child(self, cid: int) -> _Child | None:
        with self._lock:
            return self.children.get(cid)

    def handle(self, kind: bytes, cid: int, payload: bytes) -> None:
        if kind == frames.EXEC:
            spec = frames.decode_json(payload)
            before = spec.get("before")
            if isinstance(before, (int, float)) and time.time() > before:
                # The host stopped waiting for our STARTED and ran this command another
                # way (client.ACK_SECONDS): starting it now would run it twice.
                sys.stderr.write(f"command {cid} arrived after its deadline: not started\n")
                sys.stderr.flush()
                return
            dep = spec.get("after")
            if isinstance(dep, int):
                self.after(cid, spec, dep)
            else:
                self.start(cid, spec)
        elif kind == frames.MARK:
            self.mark(payload.decode("ascii", "replace"))
        elif kind == frames.SIGNAL:
            # Kept until its exit and both EOFs: a leader's stragglers holding its pipes
            # still get the signal; once all is done there is no one left to signal.
            child = self.child(cid)
            sig = int(frames.decode_json(payload).get("sig", signal.SIGTERM))
            if child is not None:
                child.signal(sig)
            elif (queued := self._unqueue(cid)) is not None:
                # Stopped before its sync ended: it never starts, as a signal before exec.
                self.skip(cid, "signalled before it started", queued, code=128 + sig)
        elif kind == frames.RESIZE:
            child = self.child(cid)
            size = frames.decode_json(payload)
            if child is not None and isinstance(child.popen, _OnPty):
                child.popen.resize(int(size.get("rows", 24)), int(size.get("cols", 80)))
        elif kind in (frames.STDIN, frames.STDIN_EOF):
            child = self.child(cid)
            with self._lock:
                waiting = self.queued.get(cid)
            target = child.stdin if child is not None else waiting
            if target is not None:
                target.put(payload if kind == frames.STDIN else None)

    def finish(self) -> None:
        """Wait for the running commands to end (see the module docstring)."""
        while True:
            with self._lock:
                if not self.children and not self.waiting:
                    return
            time.sleep(0.1)

    def exit_when_idle(self, seconds: float) -> None:
        """The backstop for a host that vanished without closing our stdin (a remote
        exec's stdin stays open then): with no command running and no frame for `seconds`,
        exit, so that the sandbox's own idle timeout can end it. The host closes us
        earlier (client._Link._idle), so this only runs when nobody is there."""
        while True:
            time.sleep(min(5.0, seconds / 4))
            with self._lock:
                busy = bool(self.children or self.waiting)
            if not busy and time.monotonic() - self.last_frame >= seconds:
                os._exit(0)

    def serve(self, in_fd: int = 0) -> int:
        from ..sync import remote

        remote.APPLY_WATCH = self  # the syncs this process runs (_Task) tell us their moves
        watch = "inotify" if self.watcher is not None else "none"
        self.send(frames.encode_json(frames.HELLO, 0, {"pid": os.getpid(), "watch": watch,
                                                           "now": time.time(),
                                                           "pty": pty_works(),
                                                           "resize": True}))
        chunks = iter(lambda: os.read(in_fd, _READ), b"")
        try:
            for kind, cid, payload in frames.read_frames(chunks):
                self.last_frame = time.monotonic()
                self.handle(kind, cid, payload)
        except frames.FrameError as exc:
            print(f"modal-offload channel agent: {exc}", file=sys.stderr)
            self.hang_up()
            self.finish()
            return 2
        self.hang_up()
        self.finish()
        return 0

    def hang_up(self) -> None:
        self.hungup.set()
        with self._lock:
            tasks = [c for c in self.children.values() if isinstance(c.popen, _Task)]
        for child in tasks:
            child.stdin.put(None)


def _spawn(argv: list[str], cwd: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modal_offload.channel.agent")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--idle-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    # Our stdout is the channel: nothing else may write there (a stray print would
    # corrupt the stream), so fd 1 moves aside and the children get their own pipes.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    agent = Agent(args.root.resolve(), args.state.resolve(), out_fd)
    if args.idle_seconds > 0:
        threading.Thread(target=agent.exit_when_idle, args=(args.idle_seconds,),
                         daemon=True).start()
    return agent.serve()


if __name__ == "__main__":
    sys.exit(main())
