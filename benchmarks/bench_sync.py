"""Workspace sync: the cost of a no-change sync, and the bytes a small change costs.

1. A 10,000-file tree (small files across nested folders, plus one 1 MiB file) is synced
   once into a local sandbox session, and copied with `rsync -a` to a second folder.
2. No-change `WorkspaceSync.up()` (warm: load the cached manifest, scan, decide, no remote
   process) vs `rsync -an --delete SRC/ DST/` on the copy already in sync, p50 of each;
   target ratio <= 1.0x.
3. One 1 MiB file rewritten: bytes sent to the remote vs the file size; target <= size +
   64 KiB. Extra lines give context without a verdict (first full sync, no-change back()).

Run: `python benchmarks/bench_sync.py [--dir PATH] [--runs N]`. Everything it writes lives
under one temporary folder (or PATH), never in HOME.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the repo on sys.path)
from _common import p50, report, timed

from modal_offload.backends._base import SessionSpec
from modal_offload.backends.local import LocalBackend
from modal_offload.sync.client import WorkspaceSync

RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
MB = 1 << 20


def make_tree(root: Path) -> int:
    """20 x 25 folders of 20 small files, a .gitignore and one 1 MiB data file."""
    count = 0
    for a in range(20):
        for b in range(25):
            folder = root / f"pkg{a:02d}" / f"mod{b:02d}"
            folder.mkdir(parents=True)
            for c in range(20):
                (folder / f"file{c:02d}.py").write_text(f"VALUE = {a * 10_000 + b * 100 + c}\n"
                                                        * (1 + c % 7))
                count += 1
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "data").mkdir()
    (root / "data" / "weights.bin").write_bytes(os.urandom(MB))
    return count + 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="work folder (default: a new temp folder)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if not Path(RSYNC).exists():
        print("bench_sync: rsync not found; install it to compare", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=args.dir))
    try:
        return run(base, args.runs)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(base: Path, runs: int) -> int:
    src, dst = base / "src", base / "dst"
    src.mkdir()
    files = make_tree(src)
    subprocess.run([RSYNC, "-a", f"{src}/", f"{dst}/"], check=True)

    backend = LocalBackend(root=base / "sandboxes")
    session = backend.open_session(SessionSpec(name="bench-sync", workspace=src))
    sync = WorkspaceSync(src, session, base / "cache", max_bytes=256 * MB)
    t0 = time.perf_counter()
    full = sync.up()
    full_s = time.perf_counter() - t0
    # Files written in the last 2 s are re-hashed once by design (racy mtimes); let them
    # age, then warm up so the timed runs see the steady state.
    time.sleep(2.1)
    for _ in range(3):
        sync.up()

    def rsync_dry() -> None:
        subprocess.run([RSYNC, "-an", "--delete", f"{src}/", f"{dst}/"], check=True,
                       stdout=subprocess.DEVNULL)

    rsync_dry()
    ours = p50(timed(sync.up, runs))
    theirs = p50(timed(rsync_dry, runs))
    check = sync.up()
    assert check.exec_skipped and check.hashed == 0, check

    report("sync_full_10k", f"first sync of {files} files ({full.content_bytes / MB:.1f} MiB) "
           f"{full_s * 1000:.0f} ms, {full.bytes_sent / MB:.1f} MiB sent (context, no target)")
    report("sync_nochange_10k", f"ours {ours * 1000:.1f} ms, rsync -an {theirs * 1000:.1f} ms, "
           f"ratio {ours / theirs:.2f}x (target <= 1.0x)")

    blob = src / "data" / "weights.bin"
    blob.write_bytes(os.urandom(MB))
    delta = sync.up()
    overhead = delta.bytes_sent - MB
    report("sync_delta_1mb", f"sent {delta.bytes_sent:,} bytes for a {MB:,}-byte file change, "
           f"overhead {overhead / 1024:.1f} KiB, {delta.files_sent} file(s) "
           f"(target <= size + 64 KiB)")

    back = p50(timed(sync.back, 3))
    report("sync_back_nochange_10k", f"p50 {back * 1000:.0f} ms: remote agent start + scan of "
           f"{files} files (context, no target)")
    session.terminate()
    ok = ours <= theirs and delta.bytes_sent <= MB + 64 * 1024
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
