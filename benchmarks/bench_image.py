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
import sys
import tempfile
from pathlib import Path

from _common import p50, report, timed

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
    try:
        from benchmarks_rootfs import first_build_report  # type: ignore[import-not-found]
    except ImportError:
        report("first image build (emulator, rootfs mode)",
               "not measured: needs the emulator's rootfs mode (see bench_image_build.py)")
        return
    first_build_report()


if __name__ == "__main__":
    warm_check()
    first_build()
