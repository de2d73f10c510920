"""`modal-offload batch` against the in-repo Modal emulator: 8 tasks against 1.

Prints the bytes uploaded for 8 tasks relative to one (the goal of issue 18 is <= 1.2x:
the workspace sent once) and the wall time to run a trivial command in 8 fresh sandboxes
relative to 1 (each task gets its own sandbox, started in parallel). Isolated HOME.

    python benchmarks/bench_batch.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, report

from testing.modal_emulator import EmulatorThread


def _env(home: Path, emu: EmulatorThread) -> dict[str, str]:
    scrub = ("MODAL_", "PRIMARY_MODAL_", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(scrub)}
    env.update(emu.env())
    env.update(HOME=str(home), MODAL_OFFLOAD_HOST="0", MODAL_OFFLOAD_BACKEND="modal",
               PYTHONPATH=str(REPO / "src"))
    return env


def _batch(ws: Path, env: dict[str, str], tasks: int) -> tuple[float, int]:
    """(wall seconds, bytes uploaded) of one batch of `tasks` trivial tasks."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "modal_offload", "batch", "--tasks", str(tasks),
                    "--", "true"], cwd=ws, env=env, check=True, stdin=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    latest = max((ws / ".modal-offload" / "batch").iterdir(), key=lambda p: p.name)
    summary = json.loads((latest / "summary.json").read_text())
    return seconds, sum(int(t["bytes_up"]) for t in summary["tasks"])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp, EmulatorThread(
            Path(tmp) / "emulator") as emu:
        home = Path(tmp) / "home"
        ws = home / "ws"
        (ws / "data").mkdir(parents=True)
        (ws / ".modal-offload.toml").write_text("")
        for k in range(20):  # ~2 MiB of workspace
            (ws / "data" / f"f{k}.bin").write_bytes(os.urandom(100 * 1024))
        env = _env(home, emu)
        _batch(ws, env, 1)  # warm: the image exists
        one_s, one_b = _batch(ws, env, 1)
        eight_s, eight_b = _batch(ws, env, 8)
        report("bytes uploaded, 8 tasks vs 1", f"{eight_b} vs {one_b} "
                                             f"({eight_b / max(1, one_b):.2f}x; goal <= 1.2x)")
        report("time to run `true` in 8 fresh sandboxes vs 1",
               f"{eight_s:.2f} s vs {one_s:.2f} s ({eight_s / one_s:.2f}x)")


if __name__ == "__main__":
    main()
