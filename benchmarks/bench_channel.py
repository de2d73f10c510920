"""Round trips per command over the session channel (issue 17), against the emulator with
injected latency, through the session host: the channel (`MODAL_OFFLOAD_CHANNEL=1`, the
default) and today's path without it (`=0`, one backend exec per command plus sync execs),
measured in the same run.

For each case: RPCs and backend execs one command makes, sequential round trips (the
emulator's call log: the longest chain of calls each starting after the previous ended, at
the injected RTT) and the p50 wall time at rtt 0 and RTT_MS. Cases: a warm no-change `true`;
one 1 KiB file edited locally; one file created remotely (synced back); a warm no-change
`true` at 10k files (against the 10-file figure); a first command in a fresh 10k-file
workspace.

    python benchmarks/bench_channel.py [RUNS] [RTT_MS]
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from _common import REPO, p50, report

from testing.modal_emulator import EmulatorThread

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
RTT_MS = float(sys.argv[2]) if len(sys.argv) > 2 else 40.0
BIG = 10_000


def make_ws(root: Path, files: int) -> Path:
    (root / "src").mkdir(parents=True)
    (root / ".modal-offload.toml").write_text("")
    for i in range(files):
        (root / "src" / f"f{i:05d}.txt").write_text(f"file {i}\n" * 4)
    return root


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-channel-") as tmp, EmulatorThread(
            Path(tmp) / "emulator") as emu:
        home = Path(tmp) / "home"
        small, big = make_ws(home / "small", 10), make_ws(home / "big", BIG)
        scrub = ("MODAL_", "PRIMARY_MODAL_", "XDG_")
        base = {k: v for k, v in os.environ.items() if not k.startswith(scrub)}
        base.update(emu.env())
        base.update(HOME=str(home), MODAL_OFFLOAD_HOST="1", PYTHONPATH=str(REPO / "src"),
                    MODAL_OFFLOAD_BACKEND="modal")
        counter = itertools.count()

        def cli(ws: Path, env: dict[str, str], *args: str) -> None:
            subprocess.run([sys.executable, "-m", "modal_offload", *args], cwd=ws, env=env,
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

        def measure(label: str, ws: Path, env: dict[str, str],
                    prepare: Callable[[], None], args: tuple[str, ...]) -> None:
            walls: dict[float, float] = {}
            for rtt in (0.0, RTT_MS):
                emu.set_rtt(rtt)
                times = []
                calls: list[object] = []
                for run in range(RUNS):
                    prepare()
                    before = len(emu.calls())
                    start = time.perf_counter()
                    cli(ws, env, "exec", *args)
                    times.append(time.perf_counter() - start)
                    if run == RUNS - 1:
                        calls = list(emu.calls()[before:])
                walls[rtt] = p50(times)
                methods = Counter(c.method for c in calls)  # type: ignore[attr-defined]
                chain = (f", {emu.sequential_round_trips(calls)} sequential round trips"
                         if rtt else "")
                report(f"{label}, rtt {rtt:g} ms",
                       f"{len(calls)} RPCs, {methods['TaskExecStart']} execs{chain}, "
                       f"p50 {walls[rtt] * 1000:.0f} ms")
            emu.set_rtt(0)

        def nothing() -> None:
            pass

        def edit(ws: Path) -> Callable[[], None]:
            def do() -> None:
                (ws / "src" / "edited.txt").write_bytes(os.urandom(512).hex().encode())
            return do

        for mode, flag in (("channel", "1"), ("today's path", "0")):
            env = {**base, "MODAL_OFFLOAD_CHANNEL": flag}
            for ws in (small, big):
                cli(ws, env, "host", "stop")
            cli(small, env, "exec", "--", "true")  # warm: sandbox, sync, agent
            cli(small, env, "exec", "--", "true")
            measure(f"{mode}: warm no-change true (10 files)", small, env, nothing,
                    ("--", "true"))
            measure(f"{mode}: one 1 KiB file edited", small, env, edit(small), ("--", "true"))
            measure(f"{mode}: one file created remotely", small, env, nothing,
                    ("-c", f"echo x > made-{next(counter)}-$$.txt"))
            emu.set_rtt(0)
            first = time.perf_counter()
            cli(big, env, "exec", "--", "true")
            report(f"{mode}: first command, fresh {BIG}-file workspace, rtt 0",
                   f"{(time.perf_counter() - first) * 1000:.0f} ms")
            cli(big, env, "exec", "--", "true")
            measure(f"{mode}: warm no-change true ({BIG} files)", big, env, nothing,
                    ("--", "true"))
            for ws in (small, big):
                cli(ws, env, "session", "stop")
                cli(ws, env, "host", "stop")


if __name__ == "__main__":
    main()
