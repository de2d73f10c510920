"""The host end of the session channel: `Channel` keeps one agent (agent.py) per session,
`ChannelSession` is a Session whose `exec` runs over it.

One command over the channel costs one write (EXEC and, when there is no input, STDIN_EOF
coalesce into it) and the agent's answers on an output stream that is already open: no
backend exec, no sandbox lookup, no Python start. Sync back learns from EXIT whether the
tree changed (agent.py), so a no-change command needs nothing more.

Failure: when the agent is not up (yet), or its channel broke, `exec` falls back to the
backend's own exec for that command and the channel reopens in the background (with a
growing pause between attempts). `exec` returns only once the agent acknowledged the
command (STARTED) within ACK_SECONDS; a channel that cannot deliver it (a failed write, no
ack in time: a network gone since the last command) is broken, the host's breaker is told
(`on_unreachable`), and the command takes the backend's exec, which meets the network before
anything started remotely (issue 19's fallback). The agent refuses an EXEC that reaches it
after that deadline, so the command is not also started there later.
A command whose channel breaks while it runs is reported as lost: one line on its stderr,
exit status LOST_EXIT (255, as ssh reports a dropped connection), and its process group
is killed through a plain exec, since nobody can read its output any more. Its files
stay in the session and the next sync back collects them.

Pipelining (issue 17): a sync up's apply is sent without waiting for its STARTED, its
input is corked (held in the link's queue) until the command it is for is queued too, and
that command's EXEC says `after` the apply, so the agent orders them and both leave in one
write (`ChannelSession.exec_after`). The command may also ask for the collect of the sync
back that follows (`collect`): the agent runs it right after the command's exit when the
tree changed, so its stream follows the EXIT without a round trip. The acknowledgement is
still awaited, only later (`_Lazy`): what was written before it is kept, and replayed into
the backend's exec when no acknowledgement comes (issue 19's fallback, unchanged).

A command under a pseudo-terminal runs on one the agent opens (its output all on stdout,
its input the raw keystrokes); an agent whose sandbox cannot open one (HELLO's `pty`)
leaves it to the backend's exec.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import posixpath
import signal as _signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..backends._base import Process, PtySpec, Session, SessionInfo
from ..errors import OffloadError
from . import frames

AGENT_MODULE = "modal_offload.channel.agent"
OPEN_WAIT_SECONDS = 15.0  # for the agent's HELLO when a command needs the channel
RETRY_SECONDS = (1.0, 5.0, 30.0, 300.0)  # pauses between reopen attempts after failures
STREAM_LIMIT = 8 << 20  # bytes queued per stream before the channel waits for the reader
SEND_LIMIT = 8 << 20  # bytes queued towards the agent before writers wait
LOST_EXIT = 255
# How long a command waits for the agent's STARTED (its acknowledgement) before the channel
# counts as broken and the command takes the backend's own exec instead (issue 19's
# fallback then applies: a refused connection runs it here). The agent refuses an EXEC that
# reaches it after this deadline (its "before", in the agent's clock), so a command given up
# on here is not started there later; ACK_GRACE leaves its STARTED time to come back.
ACK_SECONDS = 5.0
ACK_GRACE = 1.0
# Input a not yet acknowledged command keeps for its replay into the backend's exec; more
# waits for the acknowledgement (a large sync up then pays the round trip it would anyway).
REPLAY_LIMIT = 4 << 20
CORK_BYTES = 1 << 20  # a corked link writes anyway once this much is queued

log = logging.getLogger("modal_offload.channel")


class _Stream:
    """A bounded byte queue between the channel's reader and one consumer."""

    def __init__(self) -> None:
        self._items: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._closed = False
        self._discard = False  # the consumer stopped reading: drop, never block the channel
        self._cv = threading.Condition()

    def put(self, data: bytes) -> None:
        with self._cv:
            while self._size >= STREAM_LIMIT and not (self._discard or self._closed):
                self._cv.wait()
            if self._discard or self._closed:
                return
            self._items.append(data)
            self._size += len(data)
            self._cv.notify_all()

    def close(self, last: bytes = b"") -> None:
        with self._cv:
            if self._closed:
                return
            if last:
                self._items.append(last)
                self._size += len(last)
            self._closed = True
            self._cv.notify_all()

    def chunks(self) -> Iterator[bytes]:
        try:
            while True:
                with self._cv:
                    while not self._items and not self._closed:
                        self._cv.wait()
                    if not self._items:
                        return
                    data = self._items.popleft()
                    self._size -= len(data)
                    self._cv.notify_all()
                yield data
        finally:
            with self._cv:
                self._discard = True
                self._items.clear()
                self._cv.notify_all()


class ChannelProcess(Process):
    background_wait = True  # its exit arrives as a frame: waiting costs no call
    def __init__(self, link: _Link, argv: Sequence[str], cwd: str,
                 env: Mapping[str, str], sync: Sequence[str] | None = None, *,
                 wait_ack: bool = True, after: int | None = None,
                 collect: Sequence[str] | None = None, send: bool = True,
                 pty: PtySpec | None = None) -> None:
        """`wait_ack`: return only once acknowledged (else `ensure_acked` later); `after`:
        the id of the sync it must wait for; `collect`: the collect's arguments, run by the
        agent right after the exit (`prepared`); `send`: False for that prepared collect,
        whose EXEC rides in its command's."""
        self._link = link
        self._out, self._err = _Stream(), _Stream()
        self._exited = threading.Event()
        self._code = LOST_EXIT
        self.tree_changed: bool | None = None  # from EXIT: did the session's tree change?
        self.pid: int | None = None
        self._stdin_closed = False
        self._left = {frames.STDOUT_EOF, frames.STDERR_EOF, frames.EXIT}
        self._acked = threading.Event()  # the agent said STARTED (or anything else of it)
        self._abandoned = False  # no ack in time: this command goes another way
        self._ack_lock = threading.Lock()
        self.skipped: str | None = None  # from EXIT: never started, and why
        self.prepared: ChannelProcess | None = None  # the collect asked for with us
        self.prepared_collect: ChannelProcess | None = None  # ... once it really runs
        self._since = time.monotonic()  # the acknowledgement's clock (`restart_clock`)
        self._on_pty = pty is not None
        self.cid = link.register(self)
        if not send:
            self._acked.set()
            return
        request: dict[str, Any] = (
            {"sync": list(sync)} if sync is not None
            else {"argv": list(argv), "cwd": cwd, "env": dict(env)})
        if after is not None:
            request["after"] = after
        if pty is not None:
            request["pty"] = {"rows": pty.rows, "cols": pty.cols, "term": pty.term,
                              "colorterm": pty.colorterm}
        try:
            if collect is not None:
                token = uuid.uuid4().hex
                args = [*collect, "--changed-from", token]
                self.prepared = ChannelProcess(link, [], ".", {}, args, send=False)
                request["collect"] = {"cid": self.prepared.cid, "token": token,
                                      "args": args}
            link.send(lambda: self._exec_frame(request))
        except ChannelBroken:
            self._abandon()
            raise
        if wait_ack:
            self.ensure_acked()

    def restart_clock(self) -> None:
        """The acknowledgement is due ACK_SECONDS from now: the EXEC was held by a cork
        (its apply's input being packed), not by the network."""
        self._since = time.monotonic()

    def _exec_frame(self, request: dict[str, Any]) -> bytes:
        """The EXEC, made when the writer takes it, with the agent's deadline ("before")
        from the same clock as ours: one stuck behind earlier writes may be past it."""
        before = self._link.agent_deadline(self._since + ACK_SECONDS - time.monotonic())
        if before is not None:
            request = {**request, "before": before}
        return frames.encode_json(frames.EXEC, self.cid, request)

    def ensure_acked(self) -> None:
        """Return once the agent acknowledged the command; else raise ChannelBroken, and
        the channel is dropped: a write stuck in the client's retries (a network that
        went away after the last command) must not hold the command past the deadline."""
        deadline = self._since + ACK_SECONDS + ACK_GRACE
        while not self._acked.wait(0.05):
            if self._link.dead.is_set() or time.monotonic() >= deadline:
                break
        with self._ack_lock:
            if self._acked.is_set():
                return  # started there: whatever happens next, it is never re-run
            self._abandoned = True
        self._link.forget(self.cid)
        why = self._link.why if self._link.dead.is_set() else (
            f"the agent did not acknowledge a command within {ACK_SECONDS + ACK_GRACE:g}s")
        self._link.die(why, unreachable=True)
        raise ChannelBroken(why)

    def _abandon(self) -> None:
        with self._ack_lock:
            self._abandoned = True
        self._link.forget(self.cid)

    @staticmethod
    def fits(session: Session, cwd: str) -> str | None:
        """`cwd` relative to the session root, which the agent runs in; None when it lies
        outside. Only relative: a backend may map working folders to sandbox paths (the
        Modal emulator does), so the agent's own working folder is the root's real place,
        and an absolute remote path in a frame may name another folder entirely."""
        root = session.root.rstrip("/")
        if cwd.rstrip("/") == root:
            return "."
        if cwd.startswith(root + "/"):
            rel = posixpath.normpath(cwd[len(root) + 1:])
            return None if rel == ".." or rel.startswith("../") else rel
        return None

    # ------------------------------------------------------------ the contract
    def write_stdin(self, data: bytes) -> None:
        if data and not self._stdin_closed:
            with contextlib.suppress(ChannelBroken):  # as a closed pipe: not wanted
                self._link.send(frames.encode_data(frames.STDIN, self.cid, data))

    def close_stdin(self) -> None:
        if not self._stdin_closed:
            self._stdin_closed = True
            with contextlib.suppress(ChannelBroken):
                self._link.send(frames.encode(frames.STDIN_EOF, self.cid))

    def stdout_chunks(self) -> Iterator[bytes]:
        return self._out.chunks()

    def stderr_chunks(self) -> Iterator[bytes]:
        return self._err.chunks()

    def wait(self) -> int:
        self._exited.wait()
        return self._code

    def resize(self, rows: int, cols: int) -> bool:
        if not (self._on_pty and self._link.hello.get("resize")):
            return False
        try:
            self._link.send(frames.encode_json(frames.RESIZE, self.cid,
                                               {"rows": int(rows), "cols": int(cols)}))
        except ChannelBroken:
            return False
        return True

    def signal(self, sig: int = _signal.SIGTERM) -> None:
        try:
            self._link.send(frames.encode_json(frames.SIGNAL, self.cid,
                                               {"sig": int(sig), "pid": self.pid or 0}))
        except ChannelBroken:
            if self.pid is not None:
                self._link.kill_group(self.pid, sig)

    # ------------------------------------------------------- from the reader
    def on_frame(self, kind: bytes, payload: bytes) -> bool:
        """Take one frame; True once the exit and both EOFs arrived (nothing more will)."""
        with self._ack_lock:
            if self._abandoned:
                return True
            self._acked.set()
        self._left.discard(kind)
        if kind == frames.STDOUT:
            self._out.put(payload)
        elif kind == frames.STDERR:
            self._err.put(payload)
        elif kind == frames.STDOUT_EOF:
            self._out.close()
        elif kind == frames.STDERR_EOF:
            self._err.close()
        elif kind == frames.STARTED:
            self.pid = int(frames.decode_json(payload).get("pid", 0)) or None
        elif kind == frames.EXIT:
            info = frames.decode_json(payload)
            self._code = int(info.get("code", LOST_EXIT))
            changed = info.get("changed")
            self.tree_changed = changed if isinstance(changed, bool) else None
            if "skipped" in info:
                self.skipped = str(info["skipped"])
            if info.get("collect") is True:
                self.prepared_collect = self.prepared
            self._exited.set()
        return not self._left

    def lost(self, why: str) -> None:
        """The channel broke: whatever did not arrive never will."""
        if self._abandoned:
            return  # never handed to anyone: it takes the backend's exec instead
        if not self._exited.is_set():
            note = (f"modal-offload: lost the session channel while the command ran ({why}); "
                    "it was stopped, its files stay in the session\n")
            self._err.close(note.encode())
            self._exited.set()  # _code stays LOST_EXIT
            if self.pid is not None:
                self._link.kill_group(self.pid, _signal.SIGKILL)
        self._out.close()
        self._err.close()


class ChannelBroken(Exception):
    pass


class _Lazy(Process):
    """A channel command whose acknowledgement is awaited only when needed: at the first
    read, wait or signal, or once REPLAY_LIMIT bytes of input were written. Until then its
    input is also kept, so that a command the agent never acknowledged is replayed into
    `fallback()` (the backend's exec) as issue 19 has it. `corked`: it holds its link's
    cork, let go by the command that follows it (`ChannelSession.exec_after`) or here."""

    orders_after = True  # the agent starts what comes `after` it only once it succeeded

    def __init__(self, chan: ChannelProcess, fallback: Callable[[], Process],
                 corked: bool = False) -> None:
        self.chan = chan
        self._fallback = fallback
        self._corked = corked
        self._kept: list[bytes] = []
        self._kept_size = 0
        self._closed = False
        self._process: Process | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def uncork(self) -> None:
        if self._corked:
            self._corked = False
            self.chan.restart_clock()
            self.chan._link.uncork()

    def resolve(self) -> Process:
        """The process this is: the channel's once acknowledged, else the backend's."""
        with self._lock:
            if self._process is None:
                self.uncork()
                try:
                    self.chan.ensure_acked()
                    self._process = self.chan
                except ChannelBroken:
                    process = self._fallback()
                    for data in self._kept:
                        process.write_stdin(data)
                    if self._closed:
                        process.close_stdin()
                    self._process = process
                self._kept.clear()
                self._ready.set()
            return self._process

    @property
    def background_wait(self) -> bool:  # type: ignore[override]
        return self.resolve().background_wait

    @property
    def stdin_dropped(self) -> int:  # type: ignore[override]
        return self.resolve().stdin_dropped

    def write_stdin(self, data: bytes) -> None:
        with self._lock:
            keep = self._process is None and self._kept_size + len(data) <= REPLAY_LIMIT
            if keep:
                self._kept.append(data)
                self._kept_size += len(data)
                self.chan.write_stdin(data)
                return
        self.resolve().write_stdin(data)

    def close_stdin(self) -> None:
        with self._lock:
            if self._process is None:
                self._closed = True
                self.chan.close_stdin()
                return
        self.resolve().close_stdin()

    def stdout_chunks(self) -> Iterator[bytes]:
        return self.resolve().stdout_chunks()

    def stderr_chunks(self) -> Iterator[bytes]:
        # Waits for others to resolve: a pump started with the process (sync/channel.py
        # AgentRun) must not let the cork go before the command it is for was queued.
        self._ready.wait()
        assert self._process is not None
        yield from self._process.stderr_chunks()

    def wait(self) -> int:
        return self.resolve().wait()

    def signal(self, sig: int = _signal.SIGTERM) -> None:
        self.resolve().signal(sig)

    def resize(self, rows: int, cols: int) -> bool:
        return self.resolve().resize(rows, cols)

    def stream_failure(self) -> OffloadError | None:
        return self.resolve().stream_failure()


class _Link:
    """One agent process and its threads; dead for good once it breaks."""

    def __init__(self, session: Session, idle_seconds: float,
                 on_unreachable: Callable[[str], None] | None = None) -> None:
        from ..sync.channel import agent_paths

        self.session = session
        self.idle_seconds = idle_seconds
        self.on_unreachable = on_unreachable
        self.clock_offset: float | None = None  # agent's time.time() minus ours, from HELLO
        self.last_used = time.monotonic()
        self.ready = threading.Event()
        self.dead = threading.Event()
        self.why = ""
        self.hello: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._procs: dict[int, ChannelProcess] = {}
        self._next = 1
        self._queue: collections.deque[bytes | Callable[[], bytes] | None] = \
            collections.deque()
        self._queued = 0
        self._corks = 0  # while > 0 the writer waits (up to CORK_BYTES) for more
        self._cv = threading.Condition()
        # The agent's own limit is a backstop for a host that died without closing it (a
        # remote backend keeps the exec's stdin open then): twice ours, plus a margin.
        agent_idle = str(int(idle_seconds * 2 + 10))
        self.agent = session.exec(session.module_argv(AGENT_MODULE, *agent_paths(session),
                                                      "--idle-seconds", agent_idle),
                                  cwd=session.root, env={})
        for target, name in ((self._read, "reader"), (self._write, "writer"),
                             (self._drain_stderr, "stderr"), (self._idle, "idle")):
            threading.Thread(target=target, name=f"channel-{name}", daemon=True).start()

    def _idle(self) -> None:
        """Close the channel once unused for `idle_seconds`: a running exec counts as
        activity for the provider's idle timeout (testing/modal_emulator/sandboxes.py
        `_idle_timeout`, as Modal documents), so a kept agent would keep the sandbox, and
        its bill, alive. Decided under the lock that `register` takes: no command can slip
        in between."""
        while not self.dead.wait(min(5.0, self.idle_seconds / 4)):
            with self._lock:
                idle = not self._procs and \
                    time.monotonic() - self.last_used >= self.idle_seconds
                if idle:
                    self.why = "closed after being idle"
                    self.dead.set()
            if idle:
                with self._cv:
                    self._queue.append(None)
                    self._cv.notify_all()
                return

    def register(self, proc: ChannelProcess) -> int:
        with self._lock:
            if self.dead.is_set():
                raise ChannelBroken(self.why)
            cid = self._next
            self._next += 1
            self._procs[cid] = proc
            self.last_used = time.monotonic()
            return cid

    def forget(self, cid: int) -> None:
        with self._lock:
            self._procs.pop(cid, None)

    def agent_deadline(self, seconds: float) -> float | None:
        """`seconds` from now in the agent's clock, for EXEC's "before" (None: an agent that
        did not say its time). The offset is taken when HELLO arrives, so it is low by the
        HELLO's transit time: the agent's deadline falls early, never late."""
        if self.clock_offset is None:
            return None
        return time.time() + seconds + self.clock_offset

    def send(self, data: bytes | Callable[[], bytes] | None) -> None:
        """Queue `data` for the agent (None: close its stdin; a function: the bytes it
        returns when the writer takes them); raises ChannelBroken."""
        with self._cv:
            while self._queued > SEND_LIMIT and not self.dead.is_set():
                self._cv.wait()
            if self.dead.is_set():
                raise ChannelBroken(self.why)
            self._queue.append(data)
            self._queued += len(data) if isinstance(data, bytes) else 0
            self._cv.notify_all()

    def cork(self) -> None:
        """Hold what is queued until `uncork` (or CORK_BYTES): one write for a sync up's
        apply, its input and the command that follows it."""
        with self._cv:
            self._corks += 1

    def uncork(self) -> None:
        with self._cv:
            self._corks = max(0, self._corks - 1)
            self._cv.notify_all()

    def _write(self) -> None:
        # Everything queued goes out in one write: EXEC + STDIN_EOF (+ MARK...) are one
        # backend call, one round trip on a remote backend.
        while True:
            with self._cv:
                while (not self._queue or (self._corks and self._queued < CORK_BYTES
                                           and None not in self._queue)) \
                        and not self.dead.is_set():
                    self._cv.wait()
                if not self._queue:
                    return
                items = list(self._queue)
                self._queue.clear()
                self._queued = 0
                self._cv.notify_all()
            closing = None in items
            data = b"".join(i if isinstance(i, bytes) else i() for i in items
                            if i is not None)
            try:
                if data:
                    self.agent.write_stdin(data)
                if closing:
                    self.agent.close_stdin()
                    return
            except Exception as exc:
                self.die(f"writing to the agent failed: {exc}", unreachable=True)
                return

    def _read(self) -> None:
        why = "the agent's output ended"
        try:
            for kind, cid, payload in frames.read_frames(self.agent.stdout_chunks()):
                if kind == frames.HELLO:
                    self.hello = frames.decode_json(payload)
                    now = self.hello.get("now")
                    if isinstance(now, (int, float)):
                        self.clock_offset = float(now) - time.time()
                    self.ready.set()
                    continue
                with self._lock:
                    proc = self._procs.get(cid)
                if proc is None:
                    continue
                if proc.on_frame(kind, payload):
                    with self._lock:
                        self._procs.pop(cid, None)
                        self.last_used = time.monotonic()
        except Exception as exc:
            why = f"the agent sent an unusable stream: {exc}"
        self.die(why)
        with contextlib.suppress(Exception):
            code = self.agent.wait()
            log.info("channel agent of %s exited with %s", self.session.name, code)

    def _drain_stderr(self) -> None:
        with contextlib.suppress(Exception):
            for chunk in self.agent.stderr_chunks():
                log.warning("channel agent of %s: %s", self.session.name,
                            chunk.decode("utf-8", "replace").rstrip())

    def die(self, why: str, unreachable: bool = False) -> None:
        """Break the link for good. `unreachable`: the agent could not be reached (a write
        failed or went unacknowledged), which the host's breaker is told about (issue 19),
        so the next commands answer offline at once instead of meeting the network each."""
        with self._lock:
            if self.dead.is_set():
                return
            self.why = why
            self.dead.set()
            procs = list(self._procs.values())
            self._procs.clear()
        if unreachable and self.on_unreachable is not None:
            with contextlib.suppress(Exception):
                self.on_unreachable(f"the session channel broke: {why}")
        with self._cv:
            self._cv.notify_all()
        self.ready.set()  # wake anyone waiting for HELLO: it will not come
        if procs:
            log.warning("channel of %s broke with %d command(s) running: %s",
                        self.session.name, len(procs), why)
        for proc in procs:
            proc.lost(why)
        with contextlib.suppress(Exception):
            self.agent.signal(_signal.SIGKILL)

    def kill_group(self, pid: int, sig: int) -> None:
        """Signal a command's group without the channel (a plain exec), in the background."""
        def run() -> None:
            with contextlib.suppress(Exception):
                p = self.session.exec(["kill", f"-{int(sig)}", "--", f"-{int(pid)}"],
                                      cwd=self.session.root, env={})
                p.close_stdin()
                for _ in p.stdout_chunks():
                    pass
                for _ in p.stderr_chunks():
                    pass
                p.wait()
        threading.Thread(target=run, name="channel-kill", daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(ChannelBroken):
            self.send(None)


class Channel:
    """The channel of one session (by id), kept by the host between commands."""

    def __init__(self, session: Session, idle_seconds: float = 60.0,
                 on_unreachable: Callable[[str], None] | None = None) -> None:
        self.session = session
        self.idle_seconds = idle_seconds
        self.on_unreachable = on_unreachable
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._opening = False
        self._failures = 0
        self._retry_at = 0.0
        self.opened = 0  # agents started, for tests and `host status`

    def start(self) -> None:
        """Open in the background unless open, opening or resting after a failure."""
        with self._lock:
            link = self._link
            if self._opening or (link is not None and not link.dead.is_set()):
                return
            if time.monotonic() < self._retry_at:
                return
            self._opening = True
        threading.Thread(target=self._open, name="channel-open", daemon=True).start()

    def _open(self) -> None:
        try:
            link: _Link | None = _Link(self.session, self.idle_seconds, self.on_unreachable)
        except Exception as exc:
            log.warning("cannot start the channel agent of %s: %s", self.session.name, exc)
            link = None
        with self._lock:
            self._opening = False
            if link is not None:
                self._link = link
                self.opened += 1
            else:
                self._failed()

    def _failed(self) -> None:
        pause = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + pause

    def link(self, wait: float = OPEN_WAIT_SECONDS) -> _Link | None:
        """The working link, waiting up to `wait` for one being opened; None: use exec."""
        deadline = time.monotonic() + wait
        self.start()
        while True:
            with self._lock:
                link, opening = self._link, self._opening
            if link is not None and not link.dead.is_set():
                if link.ready.wait(max(0.0, deadline - time.monotonic())) \
                        and not link.dead.is_set():
                    with self._lock:
                        self._failures = 0
                    return link
                if not link.dead.is_set():
                    return None  # still starting: this command goes the old way
            if link is not None and link.dead.is_set():
                with self._lock:
                    if self._link is link:
                        self._link = None
                        if not link.hello:  # never came up: rest before trying again
                            self._failed()
                if not link.hello or link.why != "closed after being idle":
                    self.start()  # in the background: this command goes the old way
                    return None
                self.start()  # closed while idle: reopen and wait, as the first time
                continue
            if not opening or time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    def current(self) -> _Link | None:
        with self._lock:
            link = self._link
        return link if link is not None and link.ready.is_set() and not link.dead.is_set() \
            else None

    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
            self._retry_at = float("inf")
        if link is not None:
            link.close()


# Session's data attributes (backends/_base.py), copied from the wrapped session.
_SESSION_ATTRS = ("backend_name", "name", "id", "root", "state_dir", "python", "fresh",
                  "created_at", "deadline", "ended", "package_dir", "compress_sync")


class ChannelSession(Session):
    """`inner` with exec over `channel` (see the module docstring)."""

    def __init__(self, inner: Session, channel: Channel) -> None:
        self.inner = inner
        self.channel = channel
        for attr in _SESSION_ATTRS:
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))

    def __getattr__(self, name: str) -> Any:
        # What a backend's session adds beyond the contract (the Modal session's record...).
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def exec(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
             pty: PtySpec | None = None) -> Process:
        rel = ChannelProcess.fits(self, cwd)
        link = None if rel is None else self.channel.link()
        if link is not None and pty is not None and not link.hello.get("pty"):
            link = None
        if link is not None and rel is not None:
            sync = self._sync_args(argv, rel, env) if pty is None else None
            try:
                if sync is not None and sync[:1] == ["apply"]:
                    # Its input and the command it is for go out in one write (exec_after);
                    # acknowledged when read from.
                    link.cork()
                    try:
                        chan = ChannelProcess(link, argv, rel, env, sync, wait_ack=False)
                    except BaseException:
                        link.uncork()
                        raise
                    return _Lazy(chan, lambda: self.inner.exec(argv, cwd=cwd, env=env),
                                 corked=True)
                return ChannelProcess(link, argv, rel, env, sync, pty=pty)
            except ChannelBroken:
                pass
        return self.inner.exec(argv, cwd=cwd, env=env, pty=pty)

    def exec_after(self, first: Process | None, argv: Sequence[str], *, cwd: str,
                   env: Mapping[str, str], pty: PtySpec | None = None,
                   collect: Sequence[str] | None = None) -> Callable[[], Process]:
        """Session.exec_after: over the channel when `first` is a sync apply in flight on
        it (or None), in the same write, the agent ordering them (see the module
        docstring); the collect asked for runs right after the exit."""
        lazy = first if isinstance(first, _Lazy) else None
        rel = ChannelProcess.fits(self, cwd)
        link = None
        if rel is not None:
            link = lazy.chan._link if lazy is not None else self.channel.link()
        if link is not None and pty is not None and not link.hello.get("pty"):
            link = None
        if link is not None and rel is not None and (first is None or lazy is not None):
            def fallback() -> Process:
                return self.inner.exec(argv, cwd=cwd, env=env, pty=pty)
            try:
                chan = ChannelProcess(link, argv, rel, env, wait_ack=False,
                                      after=lazy.chan.cid if lazy is not None else None,
                                      collect=collect, pty=pty)
            except ChannelBroken:
                pass
            else:
                return _Lazy(chan, fallback).resolve
            finally:
                if lazy is not None:
                    lazy.uncork()
        if lazy is not None:
            lazy.uncork()
        return super().exec_after(first, argv, cwd=cwd, env=env, pty=pty, collect=collect)

    def _sync_args(self, argv: Sequence[str], rel: str, env: Mapping[str, str]
                   ) -> list[str] | None:
        """The arguments of our own sync agent when `argv` starts exactly it, at the root,
        as sync/channel.AgentRun does: the channel agent then runs it in its own process
        (no Python start). Anything else is a command like any other."""
        from ..sync.channel import AGENT_MODULE as SYNC_MODULE

        prefix = self.module_argv(SYNC_MODULE)
        if rel == "." and not env and list(argv[:len(prefix)]) == prefix:
            return list(argv[len(prefix):])
        return None

    def before_collect(self) -> str | None:
        link = self.channel.current()
        if link is None:
            return None
        token = uuid.uuid4().hex
        try:
            link.send(frames.encode(frames.MARK, 0, token.encode()))
        except ChannelBroken:
            return None
        return token

    def terminate(self) -> None:
        self.channel.close()
        self.inner.terminate()

    def info(self) -> SessionInfo:
        return self.inner.info()
