"""Large workspaces (issue 21): what a warm command costs at N files against 10 files, and
what the session host holds in memory, through the host, with the local backend and with
the modal backend on the emulator (testing.modal_emulator.EmulatorThread), in one run.

For each backend: a warm no-change `exec -- true` (p50; goal: N files within +5 ms of 10
files), a warm `exec -- true` after editing one file (p50; goal: <= 1.2x of 10 files), the
first command at N files (for scale), and the host's VmRSS/VmHWM from /proc while it keeps
the N-file session (goal: <= 100 MB). Files are small text files, 1,000 per folder, on
tmpfs (/dev/shm) when it has room, as in bench_firstsync.py: on this machine's ext4 one
file creation costs 20 µs to 1 ms depending on where its folder lands, which swamps the
first command's own work from run to run.
For scale, the local backend without the host (`MODAL_OFFLOAD_HOST=0`: one process per
command, so a baseline load and a walk of the tree per command, no goal).

    python benchmarks/bench_large.py [N] [RUNS] [BACKENDS]
    (N defaults to 100,000; BACKENDS to "local,modal")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import REPO, p50, report

from testing.modal_emulator import EmulatorThread

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
BACKENDS = sys.argv[3].split(",") if len(sys.argv) > 3 else ["local", "modal"]
PER_FOLDER = 1000


def make_ws(root: Path, files: int) -> Path:
    root.mkdir(parents=True)
    (root / ".modal-offload.toml").write_text(f"sync_max_files = {max(files * 2, 1000)}\n")
    for i in range(files):
        folder = root / "src" / f"d{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:07d}.txt").write_text(f"file {i}\n" * 4)
    return root


def host_memory(env: dict[str, str]) -> tuple[int, int]:
    """The host's (VmRSS, VmHWM) in KiB, read from /proc."""
    sys.path.insert(0, str(REPO / "src"))
    from modal_offload.host.lifecycle import Location

    data = Location(env).read_pidfile()
    assert data is not None, "no host running"
    fields = {}
    with open(f"/proc/{int(data['pid'])}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def main() -> None:
    shm = Path("/dev/shm")
    where = shm if os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 << 30 else None
    with tempfile.TemporaryDirectory(prefix="bench-large-", dir=where) as tmp, EmulatorThread(
            Path(tmp) / "emulator") as emu:
        home = Path(tmp) / "home"
        built = time.perf_counter()
        small, big = make_ws(home / "small", 10), make_ws(home / "big", N)
        report("workspaces", f"10 and {N} files built in {time.perf_counter() - built:.0f} s")
        scrub = ("MODAL_", "PRIMARY_MODAL_", "XDG_")
        base = {k: v for k, v in os.environ.items() if not k.startswith(scrub)}
        base.update(emu.env())
        base.update(HOME=str(home), MODAL_OFFLOAD_HOST="1", PYTHONPATH=str(REPO / "src"))

        def cli(ws: Path, env: dict[str, str], *args: str) -> None:
            subprocess.run([sys.executable, "-m", "modal_offload", *args], cwd=ws, env=env,
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

        def warm(ws: Path, env: dict[str, str], prepare: Callable[[], None]) -> float:
            times = []
            for _ in range(RUNS):
                prepare()
                start = time.perf_counter()
                cli(ws, env, "exec", "--", "true")
                times.append(time.perf_counter() - start)
            return p50(times)

        def edit(ws: Path) -> Callable[[], None]:
            target = ws / "src" / "d0000" / "f0000003.txt"

            def do() -> None:
                target.write_bytes(os.urandom(64).hex().encode())
            return do

        for backend in BACKENDS:
            env = {**base, "MODAL_OFFLOAD_BACKEND": backend}
            results: dict[str, dict[Path, float]] = {"no-change": {}, "one edit": {}}
            for ws in (small, big):
                cli(ws, env, "host", "stop")
                start = time.perf_counter()
                cli(ws, env, "exec", "--", "true")
                if ws is big:
                    report(f"{backend}: first command, {N} files",
                           f"{time.perf_counter() - start:.1f} s")
                cli(ws, env, "exec", "--", "true")
                results["no-change"][ws] = warm(ws, env, lambda: None)
                results["one edit"][ws] = warm(ws, env, edit(ws))
                if ws is big:
                    rss, hwm = host_memory(env)
                    report(f"{backend}: host memory with the {N}-file session",
                           f"VmRSS {rss / 1024:.0f} MB, VmHWM {hwm / 1024:.0f} MB "
                           f"(goal <= 100 MB)")
                cli(ws, env, "session", "stop")
                cli(ws, env, "host", "stop")
            nc_small, nc_big = results["no-change"][small], results["no-change"][big]
            report(f"{backend}: warm no-change true, 10 vs {N} files",
                   f"p50 {nc_small * 1000:.0f} vs {nc_big * 1000:.0f} ms, "
                   f"+{(nc_big - nc_small) * 1000:.0f} ms (goal <= +5 ms)")
            ed_small, ed_big = results["one edit"][small], results["one edit"][big]
            report(f"{backend}: warm one-edit true, 10 vs {N} files",
                   f"p50 {ed_small * 1000:.0f} vs {ed_big * 1000:.0f} ms, "
                   f"{ed_big / ed_small:.2f}x (goal <= 1.2x)")
            if backend == "local":
                plain = {**env, "MODAL_OFFLOAD_HOST": "0"}
                walls = []
                for ws in (small, big):
                    cli(ws, plain, "exec", "--", "true")
                    walls.append(warm(ws, plain, edit(ws)))
                    cli(ws, plain, "session", "stop")
                report(f"local without the host: one-edit true, 10 vs {N} files",
                       f"p50 {walls[0] * 1000:.0f} vs {walls[1] * 1000:.0f} ms (no goal)")


if __name__ == "__main__":
    main()
