"""The image check every routed command pays (issue 12), and what a first build costs.

1. `image.cache.current()` on a warm command: from the session host's memory, and from the
   on-disk cache (a fresh in-process CLI); goal: under 2 ms, so a warm command does not pay
   for parity. Printed next to a full derivation (read + parse + hash) and `config.load`,
   which every command already pays, measured in the same run.
2. A first build of a requirements image on the emulator in rootfs mode (real Debian root,
   real pip against PyPI), then the same spec again (Modal's layer cache: no rebuild), when
   rootfs mode is available here (root, Linux, mmdebstrap); otherwise it says why not.

    python benchmarks/bench_image.py [RUNS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import REPO, p50, report, timed

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
GOAL_MS = 2.0


def _workspace(root: Path) -> Path:
    (root / "src" / "demo").mkdir(parents=True)
    (root / "src" / "demo" / "__init__.py").write_text("")
    (root / ".modal-offload.toml").write_text('[image]\napt = ["jq"]\n')
    (root / "requirements.txt").write_text("numpy==2.1.0\n-r requirements-base.txt\n")
    (root / "requirements-base.txt").write_text("rich>=13\n")
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\ndependencies = []\n')
    (root / "package.json").write_text('{"name": "demo"}')  # Node too: the check stats `node`
    for i in range(40):  # a realistic root: the check scans it
        (root / f"file{i}.txt").write_text("x")
    return root


def warm_check() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        os.environ.update(XDG_CACHE_HOME=f"{tmp}/cache", XDG_STATE_HOME=f"{tmp}/state",
                          XDG_CONFIG_HOME=f"{tmp}/config", HOME=tmp)
        from modal_offload import config
        from modal_offload.image import cache, spec

        ws = _workspace(Path(tmp) / "ws")
        settings = config.load(ws)
        cache.current(ws, settings)
        memo = p50(timed(lambda: cache.current(ws, settings), RUNS))

        def from_disk() -> None:
            cache._MEMO.clear()
            cache.current(ws, settings)

        disk = p50(timed(from_disk, RUNS // 4))
        derive = p50(timed(lambda: spec.derive(ws, settings), RUNS // 20))
        load = p50(timed(lambda: config.load(ws), RUNS // 4))
        verdict = "ok" if max(memo, disk) * 1000 < GOAL_MS else "OVER GOAL"
        report("image check, warm (session host memory)", f"p50 {memo * 1e6:.0f} us")
        report("image check, warm (fresh process, disk cache)",
               f"p50 {disk * 1e6:.0f} us ({verdict}: goal < {GOAL_MS:g} ms; "
               f"{disk / load:.2f}x config.load, which every command pays)")
        report("full derivation (what the check avoids)",
               f"p50 {derive * 1000:.2f} ms ({derive / disk:.0f}x the warm check)")


def first_build() -> None:
    sys.path.insert(0, str(REPO))
    from testing.modal_emulator import EmulatorThread
    from testing.modal_emulator.rootfs import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        report("first image build (emulator, rootfs mode)", f"not measured: {reason}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp, EmulatorThread(
            Path(tmp) / "emulator", images="rootfs") as emu:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MODAL_", "PRIMARY_MODAL_", "XDG_"))}
        env.update(emu.env(), HOME=str(home), MODAL_OFFLOAD_HOST="0",
                   MODAL_OFFLOAD_BACKEND="modal", PYTHONPATH=str(REPO / "src"))
        # A marker unique to this run makes pip's layer new (never in the machine-wide
        # layer cache), while installing one small real package from PyPI.
        marker = f'six ; platform_machine != "bench-{uuid.uuid4().hex[:8]}"\n'

        def exec_true(name: str) -> float:
            ws = home / name
            ws.mkdir(parents=True, exist_ok=True)
            (ws / ".modal-offload.toml").write_text("")
            (ws / "requirements.txt").write_text(marker)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "modal_offload", "exec", "--", "true"],
                           cwd=ws, env=env, check=True, stdin=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            return time.perf_counter() - start

        runtime = emu.emulator.rootfs
        assert runtime is not None
        before = len(runtime.layers.steps_run)
        first = exec_true("first")
        built = len(runtime.layers.steps_run) - before
        again = exec_true("second")  # same image, another workspace: Modal's layer cache
        warm = p50([exec_true("second") for _ in range(5)])
        report("first build (new pip layer, base cached) + session + command",
               f"{first:.1f} s ({built} layer(s) built)")
        report("same image in a new workspace (layer cache, new session)",
               f"{again:.1f} s ({first / again:.1f}x faster than the first build)")
        report("warm command in that session (in-process CLI: starts python, imports modal)",
               f"p50 {warm * 1000:.0f} ms")


if __name__ == "__main__":
    warm_check()
    first_build()
