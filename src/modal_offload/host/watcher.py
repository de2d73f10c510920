"""Which workspace paths may have changed since a consumer last asked: inotify, no walks.

Why raw inotify (ctypes) and not watchdog: watchdog delivers events from a thread after a
0.5 s pairing delay, so an edit made just before a command could be missed. Here `take()`
drains the kernel queue synchronously; inotify queues an event inside the writing syscall,
so every change that finished before the command started is seen. Linux only; elsewhere
`Watcher.create` returns None and every sync scans.

A consumer (one per session: each has its own baseline) gets None, "scan everything", on
its first `take`, after a queue overflow, an ignore-file change, a folder rename, or any
watch failure; otherwise the set of relative paths that may differ. A folder in the set
stands for its whole subtree. Not seen by inotify: writes through a shared mmap and changes
made on another machine (network filesystems); `modal-offload host stop` forces a rescan.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ..sync.ignore import GITIGNORE, OFFLOADIGNORE, IgnoreRules

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x4000, 0x8000, 0x40000000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_EXCL_UNLINK = 0x01000000, 0x02000000, 0x04000000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
WATCH_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
              | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW
              | IN_EXCL_UNLINK)
_EVENT = struct.Struct("iIII")
_RULE_FILES = frozenset({GITIGNORE, OFFLOADIGNORE})
_BACKGROUND_DRAIN_SECONDS = 0.5  # keeps the kernel queue short while no command asks
# Past this many changed paths (a branch switch) one walk is cheaper than path-by-path.
MAX_HINTED_PATHS = 5000


class _Inotify:
    """The three libc calls, with errno kept."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd: int = fd

    def add(self, path: str) -> int:
        wd: int = self._add(self.fd, os.fsencode(path), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return wd

    def rm(self, wd: int) -> None:
        self._rm(self.fd, wd)

    def close(self) -> None:
        os.close(self.fd)


class Watcher:
    """`rules`: loads the ignore rules that decide which folders are watched (default: the
    tree's own files); the channel agent passes the rules the client last sent."""

    def __init__(self, root: Path, rules: Callable[[], IgnoreRules] | None = None) -> None:
        self.root = str(root)
        self._load_rules = rules or (lambda: IgnoreRules.load(Path(self.root)))
        self._ino = _Inotify()
        self._dirs: dict[int, str] = {}  # watch descriptor -> relative folder
        self._lock = threading.Lock()
        self._consumers: dict[str, set[str] | None] = {}
        self._rules = self._load_rules()
        self._rewatch = True  # (re)walk the tree adding watches before the next answer
        # Folders a sync apply of this process moves into the tree whole (`expect_move`):
        # their roots, those whose rename was seen, and their own watches' wds.
        self._moving: set[str] = set()
        self._moved_in: set[str] = set()
        self._moving_wds: set[int] = set()
        self._applying = False  # between begin_moves and end_moves
        self._rules_dirty = False  # a rule file changed meanwhile: re-watch at the end
        self.broken: str | None = None  # set: watching is impossible, always rescan
        self.overflows = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._background, name="watcher", daemon=True)
        self._thread.start()

    @classmethod
    def create(cls, root: Path, rules: Callable[[], IgnoreRules] | None = None
               ) -> Watcher | None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            return cls(root, rules)
        except OSError:
            return None

    # -------------------------------------------------------------- consumers
    def take(self, consumer: str) -> set[str] | None:
        """Paths changed since `consumer`'s previous take; None means scan everything."""
        with self._lock:
            if not self._caught_up():
                return None
            if consumer not in self._consumers:
                self._consumers[consumer] = set()
                return None
            changed = self._consumers[consumer]
            self._consumers[consumer] = set()
            if changed is not None and len(changed) > MAX_HINTED_PATHS:
                return None
            return changed

    def pending(self, consumer: str) -> int | None:
        """How many paths changed since `consumer`'s previous take, without taking them;
        None: unknown (never taken, overflow, watching broken), treat as changed."""
        with self._lock:
            if not self._caught_up():
                return None
            changed = self._consumers.get(consumer)
            return None if changed is None else len(changed)

    def _caught_up(self) -> bool:
        """Read the queued events (re-watching if rules changed); False when watching is
        broken, so nothing it says can be trusted. Called with the lock held."""
        self._drain()
        if self._rewatch:
            self._watch_all()
        return self.broken is None

    def invalidate(self, consumer: str) -> None:
        """The consumer could not use what it took: its next take scans everything."""
        with self._lock:
            if consumer in self._consumers:
                self._consumers[consumer] = None

    def reset(self) -> None:
        """What is ignored may have changed (new rules): every consumer scans, watches are
        re-walked with the new rules."""
        with self._lock:
            self.overflow()

    def overflow(self) -> None:
        """Forget what is known: every consumer scans next time, watches are re-walked."""
        self.overflows += 1
        for name in self._consumers:
            self._consumers[name] = None
        self._rewatch = True

    def _mark(self, rel: str) -> None:
        for name, changed in self._consumers.items():
            if changed is not None:
                changed.add(rel)
                if len(changed) > MAX_HINTED_PATHS:
                    self._consumers[name] = None  # a full scan anyway: stop collecting

    def note(self, rel: str) -> None:
        """Count `rel` as changed for every consumer (a caller's own check found it)."""
        with self._lock:
            self._mark(rel)

    # ------------------------------------------------------- moves of our own
    def begin_moves(self) -> bool:
        """A sync apply of this process starts writing into the tree (then `expect_move`
        for each folder it moves in whole, `end_moves` once done). False: watching is
        not possible now (the caller's next collect walks)."""
        with self._lock:
            self._drain()
            if self._rewatch or self.broken is not None:
                return False
            self._applying = True
            self._rules_dirty = False
            return True

    def expect_move(self, staged: str, rel: str) -> bool:
        """A sync apply in this process is about to rename its staged folder `staged`
        (in a staging folder the rules ignore, holding only what it wrote) to `rel`: watch
        it and everything below it now, under their final paths, so that nothing written
        there after the rename goes unseen (a folder watched only after it appeared leaves
        a window, which is why a folder moved in otherwise means "rescan everything").
        That rename, and the folder modes the apply sets next (IN_ATTRIB on a folder under
        `rel`), are then not counted as changes until `end_moves`; the caller checks those
        folders' modes itself after that (a folder's entry holds nothing else that an
        IN_ATTRIB can change). False: not watched, the rename will count as usual."""
        with self._lock:
            self._drain()
            if not self._applying or self._rewatch or self.broken is not None:
                return False
            seen: set[int] = set()
            if self._watch_tree(rel, seen, at=staged):
                # A rule file inside: which folders to watch was decided without it (it
                # is not at its place yet), so decide again once it is (end_moves).
                self._rules_dirty = True
            top = [wd for wd in seen if self._dirs.get(wd) == rel]
            if not top:
                return False
            self._moving.add(rel)
            self._moving_wds.update(top)
            return True

    def end_moves(self) -> None:
        """The apply's moves are over: every event counts again. When the apply wrote a
        rule file (which, outside an apply, means "rescan everything"), the watches are
        walked again with the new rules, and each folder watched only now counts as
        changed (its subtree is rescanned): what was ignored before and is not now."""
        with self._lock:
            self._drain()
            self._moving.clear()
            self._moved_in.clear()
            self._moving_wds.clear()
            self._applying = False
            if self._rules_dirty and not self._rewatch and self.broken is None:
                before = set(self._dirs.values())
                self._watch_all()
                for rel in set(self._dirs.values()) - before:
                    self._mark(rel)
            self._rules_dirty = False

    def _ours(self, wd: int, mask: int, rel: str, is_dir: bool) -> bool:
        """Whether this event is one `expect_move` announced (each rename once)."""
        if mask & IN_MOVE_SELF:
            if wd in self._moving_wds:
                self._moving_wds.discard(wd)
                return True
            return False
        if not is_dir:
            return False
        if mask & IN_MOVED_TO:
            if rel in self._moving and rel not in self._moved_in:
                self._moved_in.add(rel)
                return True
            return False
        if mask & IN_ATTRIB:
            parts = rel.split("/")
            return any("/".join(parts[:n]) in self._moving for n in range(1, len(parts) + 1))
        return False

    # ---------------------------------------------------------------- watches
    def _watch_all(self) -> None:
        self._rules = self._load_rules()
        seen: set[int] = set()
        self._watch_tree("", seen)
        for wd in set(self._dirs) - seen:  # folders moved out of the tree or gone
            self._ino.rm(wd)
            del self._dirs[wd]
        self._rewatch = False

    def _watch_tree(self, start: str, seen: set[int] | None = None,
                    at: str | None = None) -> bool:
        """`at`: where the folder `start` is now, when not at its place in the tree yet
        (`expect_move`). True when a listing held a rule file."""
        rule_files = False
        stack = [start]
        while stack and self.broken is None:
            reldir = stack.pop()
            if at is not None:
                folder = at + reldir[len(start):]
            else:
                folder = os.path.join(self.root, reldir) if reldir else self.root
            try:
                wd = self._ino.add(folder)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EACCES) or not reldir:
                    self.broken = f"cannot watch {folder}: {exc.strerror}"
                continue  # vanished meanwhile: its deletion event is queued
            self._dirs[wd] = reldir
            if seen is not None:
                seen.add(wd)
            try:
                with os.scandir(folder) as it:
                    listing = [(de.name, de.is_dir(follow_symlinks=False)) for de in it]
            except OSError:
                continue
            names = [name for name, _ in listing]
            rule_files = rule_files or not _RULE_FILES.isdisjoint(names)
            rules = self._rules.for_dir(reldir, names)
            prefix = f"{reldir}/" if reldir else ""
            stack.extend(prefix + name for name, is_dir in listing
                         if is_dir and not rules.ignored(name, True))
        return rule_files

    # ----------------------------------------------------------------- events
    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._ino.fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                self.broken = "inotify read failed"
                return
            if not data:
                return
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size: offset + _EVENT.size + length]
            offset += _EVENT.size + length
            self.event(wd, mask, os.fsdecode(raw.rstrip(b"\0")))

    def event(self, wd: int, mask: int, name: str) -> None:
        """One inotify event (public for tests, which simulate overflow with it)."""
        if mask & IN_Q_OVERFLOW:
            self.overflow()
            return
        if mask & IN_IGNORED:
            self._dirs.pop(wd, None)
            return
        reldir = self._dirs.get(wd)
        if reldir is None:
            return
        if self._moving and self._ours(wd, mask, f"{reldir}/{name}" if reldir else name,
                                       bool(mask & IN_ISDIR)):
            return
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            if not reldir or mask & IN_MOVE_SELF:
                self.overflow()  # the root or a folder moved: paths under it are stale
            return
        if not name:
            return
        rel = f"{reldir}/{name}" if reldir else name
        is_dir = bool(mask & IN_ISDIR)
        if self._applying and name in _RULE_FILES and not is_dir:
            self._rules_dirty = True  # the apply's own, probably: see end_moves
        elif name in _RULE_FILES or (is_dir and mask & (IN_MOVED_FROM | IN_MOVED_TO)):
            self.overflow()  # what is ignored, or where things live, changed: rescan all
            return
        if is_dir and mask & IN_CREATE:
            if self._rules.for_dir(reldir).ignored(name, True):
                return
            # Watch first, then report the folder: anything created in it before the watch
            # existed is found by the subtree rescan the consumer does for `rel`.
            self._watch_tree(rel)
        self._mark(rel)

    def _background(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._ino.fd], [], [], _BACKGROUND_DRAIN_SECONDS)
            except (OSError, ValueError):
                return
            if ready and not self._closed.is_set():
                with self._lock:
                    self._drain()
                # Bursts (a checkout) arrive in many reads: let them batch up.
                self._closed.wait(0.05)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        with self._lock:
            self._ino.close()
