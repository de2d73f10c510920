"""`modal-offload exec --backend modal -- true` against the in-repo Modal emulator, warm.

Prints p50 over RUNS invocations next to `--backend local` and a plain `true`, measured in
the same run, then where the time of one warm Modal exec goes: interpreter start + CLI
import, `import modal`, and the RPC timeline seen by the emulator (open session, sync up,
command, sync back). Runs with an isolated HOME, so it never touches the real ledger.

    python benchmarks/bench_modal.py [RUNS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, p50, report, timed

from testing.modal_emulator import EmulatorThread

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def _env(home: Path, emu: EmulatorThread) -> dict[str, str]:
    scrub = ("MODAL_", "PRIMARY_MODAL_", "XDG_")
    # Bytecode caches on, as a user has them (see bench_exec.py): else some runs time the
    # compiler.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(scrub) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(emu.env())
    env.update(HOME=str(home), MODAL_OFFLOAD_HOST="0", MODAL_CONFIG_PATH=emu.env()[
        "MODAL_CONFIG_PATH"], PYTHONPATH=str(REPO / "src"))
    return env


def _import_seconds(env: dict[str, str], module: str) -> float:
    """Best of 3: `import module` in a fresh interpreter, minus a bare interpreter."""
    def once(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return time.perf_counter() - start
    bare = min(once("pass") for _ in range(3))
    return min(once(f"import {module}") for _ in range(3)) - bare


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-modal-") as tmp, EmulatorThread(
            Path(tmp) / "emulator") as emu:
        home = Path(tmp) / "home"
        ws = home / "ws"
        (ws / "data").mkdir(parents=True)
        (ws / ".modal-offload.toml").write_text("")
        (ws / "data" / "input.txt").write_text("hello\n")
        env = _env(home, emu)

        def cli(backend: str) -> None:
            subprocess.run([sys.executable, "-m", "modal_offload", "exec", "--backend", backend,
                            "--", "true"], cwd=ws, env=env, check=True,
                           stdin=subprocess.DEVNULL)

        for backend in ("modal", "local"):
            cli(backend)  # warm: sandbox created, workspace synced
        true_s = p50(timed(lambda: subprocess.run(["true"], check=True), RUNS))
        local_s = p50(timed(lambda: cli("local"), RUNS))
        modal_s = p50(timed(lambda: cli("modal"), RUNS))
        report("exec true, plain", f"p50 {true_s * 1000:.1f} ms")
        report("exec --backend local (in-process)", f"p50 {local_s * 1000:.0f} ms "
                                       f"({local_s / true_s:.0f}x plain)")
        report("exec --backend modal (in-process, emulator, warm)",
               f"p50 {modal_s * 1000:.0f} ms ({modal_s / local_s:.2f}x local)")
        creates = emu.call_counts()["SandboxCreateV2"]
        report("sandboxes created for all modal runs", str(creates))

        # Where the time of one warm modal exec goes.
        start_s = min(timed(lambda: subprocess.run(
            [sys.executable, "-c", "import modal_offload.cli"], env=env, check=True), 3))
        report("python start + CLI import", f"{start_s * 1000:.0f} ms")
        report("import modal (fresh interpreter, best of 3)",
               f"{_import_seconds(env, 'modal') * 1000:.0f} ms")
        before = len(emu.calls())
        began = time.time()
        cli("modal")
        ended = time.time()
        calls = emu.calls()[before:]
        first = calls[0].at - began
        starts = [c.at - began for c in calls if c.method == "TaskExecStart"]
        report("first RPC after process start", f"{first * 1000:.0f} ms "
                                                 "(interpreter, CLI, import modal, config)")
        phases = ["sync up", "command", "sync back"] if len(starts) == 3 else \
            ["command", "sync back"]
        for i, name in enumerate(phases[:len(starts)]):
            until = starts[i + 1] if i + 1 < len(starts) else calls[-1].at - began
            report(f"  {name}", f"starts at {starts[i] * 1000:.0f} ms, "
                               f"{(until - starts[i]) * 1000:.0f} ms")
        if starts:
            report("  open session (lookup RPCs)", f"{(starts[0] - first) * 1000:.0f} ms")
        report("  after last RPC (apply, ledger, exit)",
               f"{(ended - began - (calls[-1].at - began)) * 1000:.0f} ms")
        report("RPCs per warm exec", ", ".join(
            f"{m} x{n}" for m, n in sorted(
                {c.method: sum(1 for d in calls if d.method == c.method)
                 for c in calls}.items())))


if __name__ == "__main__":
    main()
