"""Keeps a workspace and a session's copy of it in step: `up()` before a command, `back()` after.

The client caches, per session, the manifest of what the remote holds (the *baseline*).
It is valid only for the same `session.id`: a replaced sandbox starts from nothing, so a
different id means a full sync. `up()` sends the delta between the workspace and the
baseline and then makes the workspace's manifest the baseline. `back()` applies the
remote's changes safely (see extract.py) and moves the baseline only for what it wrote, so
local edits made while the command ran are still sent next time.

Conflicts: a local path changed since the baseline is never overwritten or deleted; the
remote version is saved beside it as `<name>.remote-<first 8 hex of its blake2b>` (then
`-2`, `-3`, ... if that name is taken by something else). The name is reserved with
O_EXCL, so it cannot replace anything, and it is recorded in the baseline so it is not
sent up again.

Protected paths (names.py: our config, ignore files, git, agent configs) are never
changed by a sync back: the remote version is kept beside them the same way, a remote
deletion is not applied, and the next `up()` sends the local version again. A local
symlink stays a symlink, and only what the remote was shown (the baseline, minus what it
refused to take) may be deleted or replaced (issue 13).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import posixpath
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..backends._base import Process, Session
from ..config import Settings
from ..errors import SyncError, TooManyFiles
from ..fileio import exclusive
from . import progress
from .channel import AgentRun, agent_paths, remote_unchanged
from .compress import archive_reader
from .gitsources import config_targets, outer_layers
from .ignore import IgnoreRules
from .journal import ManifestStore, Prepared
from .manifest import (
    DIR,
    FILE,
    LINK,
    Delta,
    Entry,
    Manifest,
    TooManyEntries,
    Walk,
    diff,
    diff_touched,
    drop_paths,
    rescan_in_place,
    same_content,
    scan_with_stats,
)
from .manifest import stat_entry as _stat_entry
from .names import Protection, hard_ignored
from .report import Conflict, Refusal, SyncBackReport, SyncUpReport
from .staging import remove_stale_staging
from .tarstream import ChunkReader, CountingWriter, ProtocolError, parse_header, write_stream

# extract.py (and tarfile with it) is imported where a sync back has something to apply:
# most commands change nothing remotely, and in-process they would pay ~3 ms for it (#17).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .extract import Decision, Placement

__all__ = ["Conflict", "Refusal", "SyncBackReport", "SyncUpReport", "WorkspaceSync"]

CACHE_VERSION = 1
DEFAULT_MAX_BYTES = 256 << 20
DEFAULT_MAX_FILES = Settings.sync_max_files


@dataclass(frozen=True)
class SyncPolicy:
    """What the user configured about sync (config keys `protected`, `upload_secrets`)."""

    protected: tuple[str, ...] = ()  # extra protected paths (gitignore-style patterns)
    upload_secrets: tuple[str, ...] = ()  # secret-looking names or paths allowed up


# See WorkspaceSync.up.
Then = Callable[[Process | None, list[str]], None]


class BaselineMemo(Protocol):
    """Baseline stores kept by a long-lived caller (the session host, issue #8), so a
    baseline stays in memory between commands (journal.py lends it out, no copy)."""

    def store(self, path: Path, envelope: dict[str, object]) -> ManifestStore: ...


class WorkspaceSync:
    """Sync `workspace_root` with `session`'s copy, caching the baseline in `cache_dir`.

    `max_bytes` caps what `back()` accepts in one go (decompressed); `progress` allows a
    progress bar during a large first sync: True on stderr when it is a terminal, or drawn
    into a sink the caller knows is one (progress.py).
    """

    def __init__(self, workspace_root: Path, session: Session, cache_dir: Path, *,
                 max_bytes: int = DEFAULT_MAX_BYTES, progress: progress.Target = False,
                 memo: BaselineMemo | None = None, policy: SyncPolicy | None = None,
                 max_files: int = DEFAULT_MAX_FILES) -> None:
        self.root = Path(workspace_root).resolve()
        self.policy = policy or SyncPolicy()
        self.session = session
        self.cache_dir = Path(cache_dir)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.progress = progress
        self.memo = memo
        self._own_store: ManifestStore | None = None
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", session.name) or "session"
        self.cache_path = self.cache_dir / f"sync-{safe}.json"

    # ------------------------------------------------------------------ baseline
    def _store(self) -> ManifestStore:
        """Where the baseline lives: a snapshot plus a journal of what each sync touched
        (journal.py), valid only for this session id and workspace."""
        envelope: dict[str, object] = {"version": CACHE_VERSION, "session_id": self.session.id,
                                       "workspace": str(self.root)}
        if self.memo is not None:
            return self.memo.store(self.cache_path, envelope)
        if self._own_store is None:
            self._own_store = ManifestStore(self.cache_path, envelope, durable=True)
        return self._own_store

    def load_baseline(self) -> Manifest | None:
        """The cached manifest of the remote copy (lent: hand it back with
        `_save_baseline` or the store's keep()), or None if absent, corrupt, or recorded
        for another session id or workspace."""
        return self._store().load()

    def _save_baseline(self, manifest: Manifest, touched: Iterable[str] | None,
                       prepared: Prepared | None = None) -> None:
        """`touched`: the only paths that changed since it was loaded (None: all);
        `prepared`: its snapshot, written aside while waiting (journal.py)."""
        self._store().save(manifest, touched, prepared)

    def rules(self) -> IgnoreRules:
        """This workspace's ignore rules, git's outer sources and allowed secrets included."""
        return IgnoreRules.load(self.root, outer_layers(self.root), self.policy.upload_secrets)

    def _protected(self) -> list[str]:
        """The configured protected patterns, plus what git's config points at in the tree
        (the whole workspace when it points at the root itself: the safe side)."""
        targets = config_targets(self.root)
        return [*self.policy.protected,
                *("/" + re.sub(r"([*?\[\\])", r"\\\1", t) if t != "." else "*"
                  for t in targets)]

    # ------------------------------------------------------------------------ up
    def up(self, changed: Iterable[str] | None = None,
           then: Then | None = None) -> SyncUpReport:
        """Send what changed locally since the baseline (everything, without one).

        `changed`: the caller knows (a filesystem watcher) that only these relative paths
        (a folder: its subtree) may differ since the last `up()`/`back()`, so the tree is
        not walked; None walks it. Ignored when there is no baseline.
        `then(apply, collect)`: called once all was sent, before the apply's answer is
        read: `apply` is that apply when it is still in flight (Session.exec_after may
        start the command after it), `collect` the collect arguments of a sync back.
        """
        with self.up_begin(changed) as pending:
            if then is not None:
                then(pending.process, self.collect_args())
            return pending.result()

    def collect_args(self) -> list[str]:
        """The sync agent's arguments for a collect (the channel may add a hint)."""
        return ["collect", *agent_paths(self.session), "--max-bytes", str(self.max_bytes),
                "--max-files", str(self.max_files),
                *(["--compress"] if self.session.compress_sync else [])]

    def up_begin(self, changed: Iterable[str] | None = None) -> PendingUp:
        """`up()` up to sending: the apply's reply is read by `result()`, so that the
        command can be sent before it (Session.exec_after). Only a session whose agent
        orders them (`orders_after`) leaves it pending; otherwise all is done here."""
        started = time.monotonic()
        stack = contextlib.ExitStack()
        stack.enter_context(exclusive(self.cache_path))
        try:
            return self._up_begin(changed, started, stack)
        except BaseException:
            stack.close()
            raise

    def _up_begin(self, changed: Iterable[str] | None, started: float,
                  stack: contextlib.ExitStack) -> PendingUp:
        baseline = self.load_baseline()
        rules = self.rules()
        early: AgentRun | None = None
        if baseline is None:
            # A first sync always sends: the agent starts now, so that its start (a
            # Python process, ~0.15 s) overlaps our scan instead of following it.
            early = self._apply_run()

            def drop_unused() -> None:  # nothing to send after all, or a failure
                if early is not None:
                    early.abort()

            stack.callback(drop_unused)
        before: dict[str, Entry | None] | None = None
        sent: _Sent | None = None
        if baseline is None and not progress.possible(self.progress):
            # A first sync with no bar to draw (which needs the totals first): the walk
            # feeds the packer folder by folder, so the receiver starts on the first
            # folder instead of after the whole scan (issue 21, ~0.5 s at 100,000 files).
            walk = Walk(self.root, rules, None, max_entries=self.max_files, hash_new=False)
            batches = iter(walk)
            try:
                head = next((batch for batch in batches if batch), None)
                new = walk.manifest
                report = SyncUpReport(full=True)
                if head is None:
                    report.exec_skipped = True  # nothing at all: as an empty delta
                else:
                    run, early = early or self._apply_run(), None
                    sent = self._send(itertools.chain(head, itertools.chain.from_iterable(
                        batches)), [], new, report, rules, run)
            except TooManyEntries as exc:
                raise too_many_files(exc.limit, "workspace") from None
            report.scanned, report.hashed = walk.stats.entries, walk.stats.hashed
        else:
            try:
                if changed is not None and baseline is not None:
                    # In place (the baseline is lent to us): no copy of the whole mapping,
                    # and `before` is all the diff and the journal need (issue 21).
                    new = baseline
                    before, stats = rescan_in_place(self.root, rules, new,
                                                    {*changed, *baseline.resend},
                                                    self.max_files)
                    delta = diff_touched(before, new)
                else:
                    new, stats = scan_with_stats(self.root, rules, baseline,
                                                 max_entries=self.max_files, hash_new=False)
                    delta = Delta([], []) if stats.unchanged_from(baseline) \
                        else diff(baseline, new)
            except TooManyEntries as exc:
                raise too_many_files(exc.limit, "workspace") from None
            report = SyncUpReport(full=baseline is None, scanned=stats.entries,
                                  hashed=stats.hashed)
            if baseline is not None:  # still withheld unless it changed (then resent)
                old = baseline.entries if before is None else _Before(before, new.entries)
                new.withheld = {p for p in baseline.withheld
                                if (b := old.get(p)) is not None
                                and (n := new.entries.get(p)) is not None
                                and same_content(b, n)}
            if delta.empty:
                report.exec_skipped = True  # the common case: no diff, no exec
            else:
                run, early = early or self._apply_run(), None
                sent = self._send(delta.changed, delta.deleted, new, report, rules, run)
        new.resend = set()  # what is to be resent is in the delta

        def finish() -> None:
            # A whole new baseline is written while the remote still extracts (~0.2 s at
            # 100,000 files, issue 21); it takes effect only after a good answer.
            prepared = self._store().prepare(new) \
                if sent is not None and baseline is None else None
            try:
                if sent is not None:
                    sent.reply(report)
                    # Refused by the remote: it holds no copy, so it may not replace or
                    # delete ours (a symlink out of the tree, typically).
                    new.withheld |= {r.path for r in report.refused if r.path in new.entries}
                # Also when nothing travels: fresher stat data spares re-hashing next time.
                self._save_baseline(new, _touched(baseline, new, before), prepared)
            finally:
                if prepared is not None:
                    prepared.discard()

        pending = PendingUp(report, started, stack, finish,
                            sent.run if sent is not None else None)
        if sent is None or not sent.run.process.orders_after:
            pending.result_now()
        return pending

    def _apply_run(self) -> AgentRun:
        return AgentRun(self.session, ["apply", *agent_paths(self.session)], "sync up")

    def _send(self, changed: list[str] | Iterator[str], deleted: list[str], new: Manifest,
              report: SyncUpReport, rules: IgnoreRules, run: AgentRun) -> _Sent:
        """Send `deleted` and the `changed` paths' content; `changed` may be a walk still
        under way (an iterator), whose count and bytes nobody knows yet: the header then
        says "streamed" instead."""
        fields: dict[str, object] = {"op": "apply", "full": report.full,
                                     "rules": rules.to_wire(), "deleted": deleted}
        try:
            with contextlib.ExitStack() as stack:
                bar = None
                if isinstance(changed, list):
                    content = sum(new.entries[p].size for p in changed
                                  if new.entries[p].type == FILE)
                    fields.update(files=len(changed), bytes=content)
                    if report.full and progress.wanted(self.progress, content, len(changed)):
                        total = content + progress.MEMBER_BYTES * len(changed)
                        where = [] if self.progress is True else [self.progress]
                        bar = stack.enter_context(progress.byte_bar(total, "sync up", *where))
                        bar.expect(len(changed))
                else:
                    fields["streamed"] = True
                writer = CountingWriter(run.process.write_stdin)
                stats = write_stream(writer, fields, self.root, changed, new.entries,
                                     compress=self.session.compress_sync,
                                     progress=bar.update if bar is not None else None)
            run.process.close_stdin()
        except BaseException:
            run.abort()
            raise
        report.files_sent = stats.files if stats else 0
        report.content_bytes = stats.content_bytes if stats else 0
        report.deleted = len(deleted)
        report.bytes_sent = writer.bytes_written
        return _Sent(run)

    # ---------------------------------------------------------------------- back
    def back(self, remote_changed: bool | None = None,
             prepared: Process | None = None) -> SyncBackReport:
        """Apply what the remote command changed, safely and conflict-aware.

        `remote_changed`: what the session channel said with the command's exit (False:
        nothing changed in the remote tree since the last collect); None asks the remote.
        `prepared`: a collect of `collect_args()` the session already started after the
        command (the channel's `prepared_collect`), used instead of starting one.
        """
        started = time.monotonic()
        report = SyncBackReport()
        with exclusive(self.cache_path):
            remove_stale_staging(self.root)  # a killed earlier run's leftovers (issue 13)
            known = self.load_baseline()
            baseline = known or Manifest({}, 0)
            if prepared is None and known is not None and (remote_changed is False or (
                    remote_changed is None and remote_unchanged(self.session))):
                self._store().keep(known)
                report.seconds = time.monotonic() - started
                return report
            import tarfile

            from .extract import OverCap

            touched: set[str] = set()
            if prepared is not None:
                run = AgentRun(self.session, [], "sync back", process=prepared)
            else:
                hint = self.session.before_collect()
                run = AgentRun(self.session, [*self.collect_args(),
                                              *(["--changed-from", hint] if hint else [])],
                               "sync back")
            reader = ChunkReader(run.process.stdout_chunks())
            try:
                acked = self._receive(reader, run, baseline, report, touched)
                run.process.close_stdin()
                reader.drain()
            except (ProtocolError, tarfile.TarError, OverCap) as exc:
                run.abort()
                raise SyncError("sync back failed: the remote sent an unusable stream",
                                f"{exc}; {run.stderr_tail()}".strip("; ")) from None
            except OSError as exc:  # disk full, permissions: nothing was acknowledged
                run.abort()
                raise SyncError("sync back failed: could not write in the workspace",
                                str(exc)) from None
            except BaseException:
                run.abort()
                raise
            if acked and run.process.background_wait:
                # All arrived and was applied; what is left remotely is its commit, which
                # the next sync's lock waits for. Not waiting spares a round trip; a failed
                # commit only means the same changes are offered (and found identical)
                # again, so it is logged, not reported.
                run.finish_later()
            else:
                run.finish()
            report.bytes_received = reader.bytes_read
            # Nothing offered, nothing to record: rewriting an unchanged baseline costs
            # ~0.25 s at 100,000 files (the first sync back after a first sync, typically).
            if not report.over_cap and (known is None or report.offered):
                self._save_baseline(baseline, touched if known is not None else None)
            elif known is not None:
                self._store().keep(known)  # over the cap, or nothing offered: nothing applied
        report.seconds = time.monotonic() - started
        return report

    def _receive(self, reader: ChunkReader, run: AgentRun, baseline: Manifest,
                 report: SyncBackReport, touched: set[str]) -> bool:
        """Apply the remote's stream; True once it was acknowledged. `touched` gets every
        path whose baseline entry may have changed (what the journal records)."""
        line = reader.readline()
        if not line:
            return False  # the agent died before speaking: finish() reports its stderr
        header = parse_header(line)
        if header.get("op") != "collect":
            raise ProtocolError(f"expected a collect header, got op={header.get('op')!r}")
        deleted = [str(p) for p in header.get("deleted", [])]
        report.offered = len(deleted) + int(header.get("files", 0))
        if header.get("too_many_files"):
            raise too_many_files(int(header["too_many_files"]), "remote workspace")
        if header.get("over_cap"):
            # All or nothing: not even deletions are applied, so no half-synced state.
            report.over_cap = True
            report.skipped_over_cap = [str(p) for p, _ in header.get("skipped", [])] + deleted
            report.skipped_bytes = int(header.get("bytes", 0))
            return False
        from .extract import SafeExtractor

        policy = _BackPolicy(self.root, baseline, Protection(self._protected()))
        rules = self.rules()
        extractor = SafeExtractor(self.root, policy=policy, rules=rules,
                                  replace_dirs=False, max_bytes=self.max_bytes)
        dres = extractor.delete(deleted, policy.veto)
        result = extractor.extract(archive_reader(reader, header)) \
            if int(header.get("files", 0)) > 0 else None
        run.process.write_stdin(b"ack\n")
        acked = True

        touched.update(drop_paths(baseline.entries, dres.deleted))
        removed = set(dres.deleted)
        for rel in deleted:  # already gone locally: nothing to keep in the baseline either
            if rel not in removed and _stat_entry(self.root, rel) is None:
                baseline.entries.pop(rel, None)
                touched.add(rel)
        report.deleted = dres.deleted
        report.conflicts = [Conflict(p, None, f"deleted remotely; kept here: {why}")
                            for p, why in dres.kept]
        report.refused = [Refusal(p, r) for p, r in dres.refused]
        baseline.entries.update(policy.identical)
        touched.update(policy.identical)
        # The remote's copy differs from ours where we kept ours: send ours again.
        for rel, _ in dres.kept:
            baseline.entries.pop(rel, None)
            baseline.resend.add(rel)
            touched.add(rel)
        if result is not None:
            baseline.entries.update(result.installed)
            touched.update(result.installed)
            report.applied = sorted(result.installed)
            report.refused += [Refusal(p, r) for p, r in result.refused]
            for rel, copy, why in result.sidecars:
                report.conflicts.append(Conflict(rel, copy, why))
                entry = _stat_entry(self.root, copy) if copy is not None else None
                if copy is not None and entry is not None:
                    baseline.entries[copy] = entry  # the copy is ours alone: never sent up
                    touched.add(copy)
                if rel in policy.protected_hits:
                    # The remote now holds its version: record that, so the next sync up
                    # replaces it with ours (or deletes it, when we have none).
                    if entry is not None:
                        baseline.entries[rel] = entry
                    else:
                        baseline.entries.pop(rel, None)
                    baseline.resend.add(rel)
                    touched.add(rel)
            baseline.withheld -= set(result.installed) | set(policy.identical)
        baseline.withheld -= removed
        return acked


class _Sent:
    """A sync up's apply whose input was all sent: `reply` reads its answer."""

    def __init__(self, run: AgentRun) -> None:
        self.run = run

    def reply(self, report: SyncUpReport) -> None:
        run = self.run
        try:
            out = b"".join(run.process.stdout_chunks())
        except BaseException:
            run.abort()
            raise
        run.finish()
        reply = _last_json_line(out, "sync up")
        refused = reply.get("refused")
        report.refused = [Refusal(str(p), str(r)) for p, r in refused] \
            if isinstance(refused, list) else []


class PendingUp:
    """A sync up sent (WorkspaceSync.up_begin); `result()` waits for its apply's answer
    and commits the baseline. Used as a context manager: leaving without a result stops
    the apply (nothing was committed here; the agent then starts nothing `after` it)."""

    def __init__(self, report: SyncUpReport, started: float, stack: contextlib.ExitStack,
                 finish: Callable[[], None], run: AgentRun | None) -> None:
        self.report = report
        self._started = started
        self._stack = stack
        self._finish: Callable[[], None] | None = finish
        self._run = run

    @property
    def process(self) -> Process | None:
        """The apply still in flight, for Session.exec_after; None once it is done."""
        return self._run.process if self._finish is not None and self._run is not None \
            else None

    def result_now(self) -> None:
        finish, self._finish = self._finish, None
        try:
            if finish is not None:
                finish()
        finally:
            self.report.seconds = time.monotonic() - self._started
            self._stack.close()

    def result(self) -> SyncUpReport:
        """The report; raises SyncError when the apply failed (the remote then runs nothing
        that was sent after it)."""
        self.result_now()
        return self.report

    def __enter__(self) -> PendingUp:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._finish is not None:
            self._finish = None
            if self._run is not None:
                self._run.abort()
            self._stack.close()


def too_many_files(limit: int, where: str) -> TooManyFiles:
    """The one-line refusal of a tree past `sync_max_files` (issue 21)."""
    return TooManyFiles(f"the {where} holds more than {limit:,} files to sync",
                     "add ignore rules (.gitignore or .modal-offloadignore) for generated or "
                     "data folders, or raise `sync_max_files` in .modal-offload.toml")


class _Before:
    """The entries as they were before an in-place rescan: `before` where it touched."""

    def __init__(self, before: dict[str, Entry | None], entries: dict[str, Entry]) -> None:
        self.before = before
        self.entries = entries

    def get(self, rel: str) -> Entry | None:
        return self.before[rel] if rel in self.before else self.entries.get(rel)


def _touched(baseline: Manifest | None, new: Manifest,
             before: dict[str, Entry | None] | None) -> list[str] | None:
    """The paths whose entry changed since `baseline` was loaded; None: write it whole."""
    if baseline is None:
        return None
    if before is not None:
        return [p for p, e in before.items() if new.entries.get(p) is not e]
    old = baseline.entries  # after a walk (already O(tree)): the entries not reused as is
    return ([p for p, e in new.entries.items() if old.get(p) is not e]
            + [p for p in old if p not in new.entries])


class _BackPolicy:
    """Decides, per incoming path, against the local file and the baseline."""

    def __init__(self, root: Path, baseline: Manifest, protection: Protection) -> None:
        self.root = root
        self.base = baseline.entries
        self.withheld = baseline.withheld
        self.racy_after = baseline.racy_after_ns()
        self.protection = protection
        self.identical: dict[str, Entry] = {}  # local already equals the remote version
        self.protected_hits: set[str] = set()

    def _local(self, rel: str) -> tuple[Entry | None, Entry | None, bool]:
        """(local entry, what the remote was shown, whether local still equals that).

        An unreadable local file is present and changed, never absent; a path the remote
        refused to take was never shown to it.
        """
        base = None if rel in self.withheld else self.base.get(rel)
        cur = _stat_entry(self.root, rel, base, self.racy_after)
        if cur is None and os.path.lexists(os.path.join(self.root, rel)):
            return Entry(FILE, -1, -1, 0), base, False  # exists, cannot be read
        if cur is None or base is None:
            return cur, base, cur is None and base is None
        return cur, base, same_content(cur, base)

    def __call__(self, rel: str, incoming: Entry) -> Placement | Decision:
        from .extract import Decision, Placement  # loaded by _receive already

        cur, _, unchanged = self._local(rel)
        if cur is not None and same_content(cur, incoming):
            self.identical[rel] = cur
            return Placement.SKIP
        if incoming.type == LINK and self._into_protected(rel, incoming.target or ""):
            return Decision(Placement.REFUSE, "symlink into a protected path")
        if self.protection.protected(rel):
            if incoming.type == DIR:
                return Placement.SKIP  # its files are reported one by one
            self.protected_hits.add(rel)
            return Decision(Placement.SIDECAR, "protected: the remote may not change it here")
        if cur is not None and cur.type == LINK and incoming.type != LINK:
            why = "a local symlink is there and stays a symlink"
            return Decision(Placement.REFUSE if incoming.type == DIR else Placement.SIDECAR, why)
        if incoming.type == DIR and cur is not None and cur.type == DIR:
            return Placement.REPLACE if unchanged else Placement.SKIP  # a mode-only change
        # Changed locally, or deleted locally while the remote changed it: keep local.
        return Placement.REPLACE if unchanged else Placement.SIDECAR

    def _into_protected(self, rel: str, target: str) -> bool:
        """A link whose target is (or, through links already here, resolves to) a protected
        or hard-ignored path: a later local write through it would change what the remote
        may not change (`run.sh -> .git/hooks/pre-commit`)."""
        lexical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        physical = os.path.relpath(os.path.realpath(os.path.join(
            self.root, os.path.dirname(rel), target)), os.path.realpath(self.root))
        return any(p not in (".", "..") and not p.startswith("../") and (
            self.protection.protected(p) or any(hard_ignored(c) for c in p.split("/")))
            for p in (lexical, physical.replace(os.sep, "/")))

    def veto(self, rel: str) -> str | None:
        """Why the remote's deletion of `rel` is not applied here, or None."""
        if self.protection.protected(rel):
            return "protected: the remote may not delete it here"
        cur, base, unchanged = self._local(rel)
        if cur is None:
            return None
        if base is None:
            return "the remote never had it"
        return None if unchanged else "changed here since the last sync"


def _last_json_line(out: bytes, what: str) -> dict[str, object]:
    lines = out.strip().splitlines()
    try:
        reply = json.loads(lines[-1]) if lines else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not reply.get("ok"):
        raise SyncError(f"{what} failed: the remote sync agent gave no usable reply",
                        repr(out[-200:]))
    return reply
