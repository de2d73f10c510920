"""What a laptop on a real network sees: a warm `modal-offload exec -- true` through the Modal
backend against the in-repo emulator, at an injected round-trip time of 0 and of RTT_MS.

Prints, per setting, the RPCs and execs one warm command makes, how many of those round trips
run one after another (the emulator's call log: the longest chain of calls each starting after
the previous one ended), and the p50 wall time; then the wall-time ratio. Measures only: making
the round trips fewer is a later issue.

    python benchmarks/bench_latency.py [RUNS] [RTT_MS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import REPO, p50, report, timed

from testing.modal_emulator import EmulatorThread

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
RTT_MS = float(sys.argv[2]) if len(sys.argv) > 2 else 50.0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp, EmulatorThread(
            Path(tmp) / "emulator") as emu:
        home = Path(tmp) / "home"
        ws = home / "ws"
        (ws / "data").mkdir(parents=True)
        (ws / ".modal-offload.toml").write_text("")
        (ws / "data" / "input.txt").write_text("hello\n")
        scrub = ("MODAL_", "PRIMARY_MODAL_", "XDG_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(scrub)}
        env.update(emu.env())
        # In-process (no session host), so every RPC of the command is its own.
        env.update(HOME=str(home), MODAL_OFFLOAD_HOST="0", PYTHONPATH=str(REPO / "src"))

        def once() -> None:
            subprocess.run([sys.executable, "-m", "modal_offload", "exec", "--backend", "modal",
                            "--", "true"], cwd=ws, env=env, check=True,
                           stdin=subprocess.DEVNULL)

        walls: dict[float, float] = {}
        for rtt in (0.0, RTT_MS):
            emu.set_rtt(0)
            once()  # warm: sandbox created, workspace synced
            emu.set_rtt(rtt)
            before = len(emu.calls())
            once()
            calls = emu.calls()[before:]
            walls[rtt] = p50(timed(once, RUNS))
            methods = Counter(c.method for c in calls)
            # At rtt 0 every call is near-instant, so only a delayed run shows the chain.
            chain = f", {emu.sequential_round_trips(calls)} sequential round trips" if rtt else ""
            report(f"rtt {rtt:g} ms, warm exec -- true",
                   f"{len(calls)} RPCs, {methods['TaskExecStart']} execs{chain}, "
                   f"p50 {walls[rtt] * 1000:.0f} ms")
        extra = walls[RTT_MS] - walls[0.0]
        report(f"wall time at rtt {RTT_MS:g} ms / rtt 0",
               f"{walls[RTT_MS] / walls[0.0]:.2f}x (+{extra * 1000:.0f} ms, "
               f"= {extra * 1000 / RTT_MS:.1f} round trips' worth)")


if __name__ == "__main__":
    main()
