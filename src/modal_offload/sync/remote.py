"""The remote end of sync: a small agent run as `python -m modal_offload.sync.remote`.

    apply   --root R --state S                   stdin: header + tar;  stdout: one JSON line
    collect --root R --state S --max-bytes N [--changed-from TOKEN] [--compress]
                                                 stdout: header + tar; stdin: "ack\\n"

The tar may travel compressed in frames, which its header then announces (compress.py).

The agent keeps a manifest of R in `S/manifest.json`: the state both sides agreed on at
the last sync. `apply` updates only the entries it touched (or, for a full sync, starts
the manifest afresh from what it installed), so the next `collect` is a cheap scan of R
against it. Both commands hold `S/lock` so two syncs into one session never interleave.

`collect` commits its new manifest only after the client acknowledges that it applied the
stream ("ack" on stdin, after the archive). Over the size cap it sends only the header
(what changed, and sizes), commits nothing, and therefore offers the same changes again
next time: nothing made remotely is ever silently dropped, and the caller keeps seeing
what was skipped until the cap allows it or the files go away. If the client dies before
acknowledging, the changes are likewise offered again.

Imports stay light (stdlib, pathspec and this package's sync modules) because this runs
once per synced command on the remote.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from .ignore import IgnoreRules
from .journal import ManifestStore
from .manifest import (
    FILE,
    Entry,
    Manifest,
    TooManyEntries,
    diff,
    diff_touched,
    drop_paths,
    rescan_in_place,
    scan_with_stats,
)
from .tarstream import MAX_HEADER_BYTES, CountingWriter, ProtocolError, encode_header, write_stream
from .tarstream import parse_header as _parse_header

TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse loads in `parse`: the client imports this module for its names
    import argparse

ACK_TIMEOUT_SECONDS = 600.0  # a vanished client must not hold the session's sync lock forever
MANIFEST_NAME = "manifest.json"
RULES_NAME = "rules.json"  # the client's outer ignore layers and allowed secrets
# `collect` leaves this file with mtime = (its scan's start - margin) once the client has the
# result: any later change in the tree has a ctime newer than that (ctime cannot be set back
# by tools that fake mtimes), so `find -cnewer STAMP` on the remote answers "did anything
# change since?" without starting Python (see client.WorkspaceSync.back). The margin covers
# the kernel's coarse file-timestamp clock, which may lag time.time() by a tick.
STAMP_NAME = "unchanged-since"
STAMP_MARGIN_SECONDS = 0.02  # > one tick of the coarse clock even at HZ=100


def clear_stamp(state: Path) -> None:
    """The tree is about to change in a way the stamp may not reveal: force a full collect."""
    (state / STAMP_NAME).unlink(missing_ok=True)


def write_stamp(state: Path, at: float) -> None:
    tmp = state / f".{STAMP_NAME}.{os.getpid()}.tmp"
    tmp.write_bytes(b"")
    os.utime(tmp, (at, at))
    os.replace(tmp, state / STAMP_NAME)


# The session channel's agent (channel/agent.py) watches the tree with inotify. Right before
# a collect it writes what changed since the last committed collect to `changed-<token>.json`
# and the client passes `--changed-from <token>`: the collect then rescans those paths only,
# no walk (issue 21). A collect deletes its hint when it commits; a hint still there at the
# next mark was never committed (over the cap, no ack), so its paths are carried over.
HINT_PREFIX = "changed-"
_TOKEN_CHARS = frozenset("0123456789abcdef")


def hint_path(state: Path, token: str) -> Path | None:
    if not 8 <= len(token) <= 32 or not set(token) <= _TOKEN_CHARS:
        return None
    return state / f"{HINT_PREFIX}{token}.json"


def write_hint(state: Path, token: str, previous: str | None,
               changed: set[str] | None) -> None:
    """Record `changed` (None: unknown, walk) for the collect named `token`, plus what the
    uncommitted collect `previous` was told."""
    path = hint_path(state, token)
    old = hint_path(state, previous) if previous else None
    if old is not None and changed is not None:
        try:
            carried = json.loads(old.read_bytes())
            changed = changed | {str(p) for p in carried} if isinstance(carried, list) else None
        except FileNotFoundError:
            pass  # committed: nothing to carry
        except (OSError, ValueError):
            changed = None
    if old is not None:
        old.unlink(missing_ok=True)
    if path is None or changed is None:
        return
    state.mkdir(parents=True, exist_ok=True)
    tmp = state / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(sorted(changed)))
    os.replace(tmp, path)


def read_hint(state: Path, token: str | None) -> tuple[Path, list[str]] | None:
    """The paths a hinted collect may limit itself to, or None: walk. Also None when the
    client's rules changed after the hint was written (what is ignored may differ)."""
    path = hint_path(state, token) if token else None
    if path is None:
        return None
    try:
        st = path.stat()
        data = json.loads(path.read_bytes())
        rules_st = (state / RULES_NAME).stat()
    except (OSError, ValueError):
        return None
    if not isinstance(data, list) or rules_st.st_mtime_ns > st.st_mtime_ns:
        return None
    return path, [str(p) for p in data]


# The manifest is a snapshot plus a journal (sync/journal.py): a sync appends only the
# paths it touched. The channel agent runs every sync in this process, so the stores (and
# the manifests they hold between syncs) are kept here; a process of its own starts empty.
_STORES: OrderedDict[str, ManifestStore] = OrderedDict()
_STORES_LOCK = threading.Lock()
_MAX_STORES = 4


def manifest_store(state: Path) -> ManifestStore:
    with _STORES_LOCK:
        store = _STORES.get(str(state))
        if store is None:
            store = _STORES[str(state)] = ManifestStore(state / MANIFEST_NAME)
            while len(_STORES) > _MAX_STORES:
                _STORES.popitem(last=False)
        _STORES.move_to_end(str(state))
        return store


class ApplyWatch(Protocol):
    """The channel agent's watcher, as a full apply in its process uses it (agent.py):
    `begin` once the rules are written and before anything is, `moving` before each
    folder moved in whole (SafeExtractor's on_move), `end` with what was installed once
    the manifest is saved (None: the apply failed)."""

    def begin(self, root: Path) -> None: ...
    def moving(self, staged: str, rel: str) -> object: ...
    def end(self, installed: dict[str, Entry] | None) -> None: ...


# Set by the channel agent for the syncs it runs in this process; a process of its own has
# no watcher: its collects walk.
APPLY_WATCH: ApplyWatch | None = None


def load_manifest(state: Path) -> Manifest | None:
    """The agreed manifest (lent by its store: see journal.py), None when absent or
    unreadable (a full collect then offers everything)."""
    return manifest_store(state).load()


def save_manifest(state: Path, manifest: Manifest) -> None:
    """Record `manifest` whole (a new snapshot)."""
    manifest_store(state).save(manifest)


def load_rules(root: Path, state: Path) -> IgnoreRules:
    """The rules the client last sent (the built-in ones before the first apply)."""
    try:
        data = json.loads((state / RULES_NAME).read_bytes())
    except (OSError, ValueError):
        data = None
    return IgnoreRules.from_wire(root, data)


def _locked(state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd  # released when the process exits


def apply(root: Path, state: Path, stdin: IO[bytes], stdout: IO[bytes]) -> int:
    lock = _locked(state)
    try:
        return _apply(root, state, stdin, stdout)
    finally:
        os.close(lock)  # also run inside the channel agent, which lives on


def _apply(root: Path, state: Path, stdin: IO[bytes], stdout: IO[bytes]) -> int:
    from .compress import archive_reader
    from .extract import ExtractResult, SafeExtractor  # lazily: collect must start fast

    started = time.time_ns()
    header = _parse_header(stdin.readline(MAX_HEADER_BYTES))
    if header.get("op") != "apply":
        raise ProtocolError(f"expected an apply header, got op={header.get('op')!r}")
    store = manifest_store(state)
    previous = store.load()
    rules = IgnoreRules.from_wire(root, header.get("rules"))
    wire = json.dumps(rules.to_wire())
    try:
        same = (state / RULES_NAME).read_text() == wire
    except (OSError, ValueError):
        same = False
    if not same:  # rewritten only when they differ: the channel agent re-walks then
        tmp = state / f".{RULES_NAME}.{os.getpid()}.tmp"
        tmp.write_text(wire)
        os.replace(tmp, state / RULES_NAME)
    # A full apply forgets remote-only files that still carry old ctimes; they must be
    # offered back by the next collect, so the quick check may not short-cut it.
    clear_stamp(state)
    full = bool(header.get("full")) or previous is None
    # A full apply tells the watcher (when there is one) what it moves in, so that the
    # next collect may skip its walk when the tree held nothing else (agent.py).
    watch = APPLY_WATCH if full else None
    if watch is not None:
        watch.begin(root)
    try:
        extractor = SafeExtractor(root, replace_dirs=True,
                                  on_move=watch.moving if watch is not None else None)
        deleted = [str(p) for p in header.get("deleted", [])]
        dres = extractor.delete(deleted, rules=rules)
        # "streamed": the client packed while it walked, so no count came first.
        result = extractor.extract(archive_reader(stdin, header)) \
            if int(header.get("files", 0)) > 0 or header.get("streamed") else ExtractResult()
        if full:
            # A full sync is the new baseline: what we did not receive is not known to
            # the client, so a later collect offers it back instead of it lingering unseen.
            manifest = Manifest({}, started)
            manifest.entries.update(result.installed)
            store.save(manifest)
    except BaseException:
        if watch is not None:
            watch.end(None)
        raise
    if watch is not None:
        watch.end(result.installed)
    if not full:
        assert previous is not None
        manifest = previous
        touched = drop_paths(manifest.entries, deleted)
        manifest.entries.update(result.installed)
        store.save(manifest, [*touched, *result.installed])
    reply = {"ok": True, "installed": len(result.installed), "deleted": len(dres.deleted),
             "kept": dres.kept, "refused": result.refused + dres.refused,
             "content_bytes": result.content_bytes}
    stdout.write(json.dumps(reply).encode() + b"\n")
    stdout.flush()
    return 0


def collect(root: Path, state: Path, max_bytes: int, stdin: IO[bytes], stdout: IO[bytes],
            hint: str | None = None, close_stdout: Callable[[], None] | None = None,
            compress: bool = False, max_files: int | None = None) -> int:
    """`close_stdout`: gives the client EOF after the archive (default: fd 1 moves to
    /dev/null, for a process of its own). `compress`: the client asked for a compressed
    archive (sync/compress.py), which the header then announces."""
    lock = _locked(state)
    try:
        return _collect(root, state, max_bytes, stdin, stdout, hint,
                        close_stdout or _close_stdout, compress, max_files)
    finally:
        os.close(lock)


def _collect(root: Path, state: Path, max_bytes: int, stdin: IO[bytes], stdout: IO[bytes],
             hint: str | None, close_stdout: Callable[[], None], compress: bool,
             max_files: int | None = None) -> int:
    try:
        return _collect_scanned(root, state, max_bytes, stdin, stdout, hint, close_stdout,
                                compress, max_files)
    except TooManyEntries as exc:
        # An answer, not a crash: the client refuses in its own words (nothing committed).
        stdout.write(encode_header({"op": "collect", "deleted": [], "bytes": 0, "files": 0,
                                    "over_cap": False, "too_many_files": exc.limit}))
        stdout.flush()
        return 0


def _collect_scanned(root: Path, state: Path, max_bytes: int, stdin: IO[bytes],
                     stdout: IO[bytes], hint: str | None, close_stdout: Callable[[], None],
                     compress: bool, max_files: int | None) -> int:
    store = manifest_store(state)
    previous = store.load()
    scan_started = time.time()
    hinted = read_hint(state, hint) if previous is not None else None
    before: dict[str, Entry | None] | None = None
    if previous is not None and hinted is not None:
        # In place: the manifest is ours until handed back (journal.py), and `before` is
        # both the diff's input and what the journal records.
        before, stats = rescan_in_place(root, load_rules(root, state), previous, hinted[1],
                                        max_files)
        new = previous
        delta = diff_touched(before, new)
    else:
        new, stats = scan_with_stats(root, load_rules(root, state), previous,
                                     max_entries=max_files, hash_new=False)
        delta = diff(previous, new)
    # Missing from the scan is not removed from the disk: what the remote's (perhaps
    # rewritten) ignore rules now skip still exists, and must not come back as a deletion
    # (issue 13). Only a path that is really gone is reported deleted.
    kept = {p for p in delta.deleted if os.path.lexists(root / p)}
    if kept and previous is not None:
        old = before if before is not None else previous.entries
        new.entries.update((p, e) for p in kept if (e := old[p]) is not None)
        delta.deleted = [p for p in delta.deleted if p not in kept]
    total = sum(new.entries[p].size for p in delta.changed if new.entries[p].type == FILE)
    fields: dict[str, Any] = {"op": "collect", "deleted": delta.deleted, "bytes": total}
    if total > max_bytes:
        skipped = [[p, new.entries[p].size] for p in delta.changed]
        stdout.write(encode_header({**fields, "files": 0, "over_cap": True, "max_bytes": max_bytes,
                                    "skipped": skipped}))
        stdout.flush()
        return 0  # nothing committed: offered again next time (see module docstring)
    write_stream(CountingWriter(stdout.write),
                 {**fields, "files": len(delta.changed), "over_cap": False},
                 root, delta.changed, new.entries, compress=compress)
    stdout.flush()
    close_stdout()
    if _wait_ack(stdin):
        _commit(store, previous, new, before, stats.unchanged_from(previous))
        if hinted is not None:
            hinted[0].unlink(missing_ok=True)  # committed: the next mark starts afresh
        write_stamp(state, scan_started - STAMP_MARGIN_SECONDS)
    return 0


def _commit(store: ManifestStore, previous: Manifest | None, new: Manifest,
            before: dict[str, Entry | None] | None, unchanged: bool) -> None:
    """Record the acknowledged collect: only the paths whose entry changed (fresher stat
    data included, which spares re-hashing next time)."""
    if before is not None:
        touched = [p for p, e in before.items() if new.entries.get(p) is not e]
    elif previous is None:
        store.save(new)
        return
    elif unchanged:
        touched = []
    else:  # a walk: O(tree) already; which entries are not the very same objects
        old = previous.entries
        touched = [p for p, e in new.entries.items() if old.get(p) is not e]
        touched += [p for p in old if p not in new.entries]
    if touched:
        store.save(new, touched)
    else:
        store.keep(new)


def _close_stdout() -> None:
    """Give the client EOF after the archive while we still wait for its ack."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _wait_ack(stdin: IO[bytes]) -> bool:
    try:
        ready, _, _ = select.select([stdin], [], [], ACK_TIMEOUT_SECONDS)
    except (OSError, ValueError, TypeError):
        ready = [stdin]  # not selectable (tests pass BytesIO): just read
    if not ready:
        return False
    return stdin.readline(64).strip() == b"ack"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m modal_offload.sync.remote")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("apply", "collect"):
        p = sub.add_parser(name)
        p.add_argument("--root", required=True, type=Path)
        p.add_argument("--state", required=True, type=Path)
        if name == "collect":
            p.add_argument("--max-bytes", required=True, type=int)
            p.add_argument("--changed-from", default=None)  # a hint's token (see above)
            p.add_argument("--compress", action="store_true")  # see sync/compress.py
            p.add_argument("--max-files", type=int, default=None)  # sync_max_files
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(parse(argv), sys.stdin.buffer, sys.stdout.buffer, sys.stderr)


def run(args: argparse.Namespace, stdin: IO[bytes], stdout: IO[bytes], stderr: IO[str],
        close_stdout: Callable[[], None] | None = None) -> int:
    """One parsed command on these streams: a process of its own (main), or a thread of
    the channel agent, which spares the Python start (channel/agent.py)."""
    try:
        if args.cmd == "apply":
            return apply(args.root, args.state, stdin, stdout)
        return collect(args.root, args.state, args.max_bytes, stdin, stdout,
                       args.changed_from, close_stdout, args.compress, args.max_files)
    except ProtocolError as exc:
        print(f"modal-offload sync agent: protocol error: {exc}", file=stderr)
        return 2
    except Exception as exc:
        if type(exc).__module__ == "tarfile":  # without importing tarfile on every start
            print(f"modal-offload sync agent: protocol error: {exc}", file=stderr)
            return 2
        raise
    except OSError as exc:
        print(f"modal-offload sync agent: {args.cmd} failed: {exc}", file=stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
