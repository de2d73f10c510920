"""A first sync against rsync (issue 21 item 2) and bytes on the wire (issue 17 item 3).

1. A fresh workspace of N small text files (default 100,000; 100 per folder): the first
   `modal-offload exec -- true` on the local backend (through the session host, as a user
   runs it: scan, pack, remote extract, the command, sync back) vs `rsync -a` of the same
   tree into a fresh folder, timed before and after ours (their mean is the reference).
   Goal: ratio <= 1.0x. A second variant with 4 KiB files (~400 MB at N=100,000) unless
   --small-only.
2. A first sync of this repository's sources (src, tests, testing, benchmarks) as the
   stream a sync sends: bytes on the wire without and with compression (sync/compress.py),
   and the CPU compression costs.

The trees live on tmpfs (/dev/shm, when it has 4 GiB free) by default: on this machine's
ext4 a file creation costs from 20 us to 1 ms depending on where the allocator places its
folder, which swamps both sides' own work run to run; `--dir PATH` measures elsewhere.

Run: `python benchmarks/bench_firstsync.py [N] [--dir PATH] [--small-only]`; a smaller N
(e.g. 20000) for a quick run.
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
from _common import REPO, report

from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.manifest import scan
from modal_offload.sync.tarstream import CountingWriter, write_stream

RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
PER_FOLDER = 100


def make_tree(root: Path, files: int, size: int) -> int:
    """`files` text files, PER_FOLDER a folder, two levels deep; `size` 0: 10-90 bytes."""
    made = 0
    for a in range(files // (PER_FOLDER * 50) + 1):
        for b in range(50):
            if made >= files:
                return made
            folder = root / f"pkg{a:03d}" / f"mod{b:02d}"
            folder.mkdir(parents=True)
            for c in range(min(PER_FOLDER, files - made)):
                body = (f"line {made} {c}\n" * (1 + c % 9) if not size
                        else (f"{made:08d}" * (size // 8 + 1))[:size])
                (folder / f"f{c:03d}.txt").write_text(body)
                made += 1
    return made


def timed(argv: list[str], **kw: object) -> float:
    os.sync()  # the other side's dirty pages must not be flushed on our clock
    start = time.perf_counter()
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def first_exec_vs_rsync(base: Path, files: int, size: int, label: str) -> float:
    ws, home = base / "ws", base / "home"
    ws.mkdir()
    (home / ".run").mkdir(parents=True, mode=0o700)
    (ws / ".modal-offload.toml").write_text("")
    made = make_tree(ws, files, size)
    mb = sum(f.stat().st_size for f in ws.rglob("*") if f.is_file()) / 1e6
    time.sleep(2.1)  # out of the racy window, as files a user did not just write
    cli = str(Path(REPO, ".venv", "bin", "modal-offload"))
    if not os.access(cli, os.X_OK):
        cli = "modal-offload"
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_STATE_HOME": str(home / ".state"), "XDG_CONFIG_HOME": str(home / ".cfg"),
           "XDG_RUNTIME_DIR": str(home / ".run"), "MODAL_OFFLOAD_BACKEND": "local"}
    before = timed([RSYNC, "-a", f"{ws}/", f"{base}/rsync1/"])
    ours = timed([cli, "exec", "--", "true"], cwd=ws, env=env)
    after = timed([RSYNC, "-a", f"{ws}/", f"{base}/rsync2/"])
    subprocess.run([cli, "host", "stop"], cwd=ws, env=env, capture_output=True)
    rsync = (before + after) / 2
    ratio = ours / rsync
    report(f"first_sync_{label}",
           f"{made:,} files ({mb:.0f} MB): first `exec -- true` {ours:.2f} s, rsync -a "
           f"{rsync:.2f} s ({before:.2f}/{after:.2f}), ratio {ratio:.2f}x (goal <= 1.0x)")
    return ratio


def wire_bytes() -> None:
    manifest = scan(REPO, IgnoreRules.load(REPO))
    paths = sorted(p for p in manifest.entries
                   if p.split("/")[0] in ("src", "tests", "testing", "benchmarks"))
    sizes = {}
    for compress in (False, True):
        sent = CountingWriter(lambda data: None)
        start = time.process_time()
        write_stream(sent, {"op": "apply"}, REPO, paths, dict(manifest.entries),
                     compress=compress)
        sizes[compress] = (sent.bytes_written, time.process_time() - start)
    (plain, t0), (packed, t1) = sizes[False], sizes[True]
    report("first_sync_wire_bytes",
           f"this repository's sources, {len(paths)} entries: {plain / 1e6:.2f} MB plain, "
           f"{packed / 1e6:.2f} MB compressed ({plain / packed:.1f}x smaller, "
           f"{(t1 - t0) * 1000:.0f} ms more CPU)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="?", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, help="where the trees go (default: /dev/shm)")
    parser.add_argument("--small-only", action="store_true")
    args = parser.parse_args()
    if not Path(RSYNC).exists():
        print("bench_firstsync: rsync not found; install it to compare", file=sys.stderr)
        return 1
    where = args.dir or (Path("/dev/shm") if os.access("/dev/shm", os.W_OK)
                         and shutil.disk_usage("/dev/shm").free > 4 << 30 else None)
    print(f"trees in {where or tempfile.gettempdir()}", flush=True)
    wire_bytes()
    worst = 0.0
    for size, label in ((0, "small"), (4096, "4k")):
        if size and args.small_only:
            continue
        base = Path(tempfile.mkdtemp(prefix="bench-firstsync-", dir=where))
        try:
            worst = max(worst, first_exec_vs_rsync(base, args.files, size, label))
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
