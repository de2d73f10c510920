"""Demo speed: our NumPy demo vs the original pure-Python multiprocessing loop, same run.

Target: >= 30x at 24M iterations / 6 workers.
"""

from __future__ import annotations

import _common  # noqa: F401  (puts the repo on sys.path)
from _common import report, timed

import primary_compute
from testing import demo_reference

ITERATIONS, WORKERS, SALT = 24_000_000, 6, 17


def main() -> None:
    baseline = min(timed(lambda: demo_reference.checksum(ITERATIONS, WORKERS, SALT,
                                                         processes=True), 1))
    ours = min(timed(lambda: primary_compute.do_heavy_stuff(
        {"iterations": ITERATIONS, "workers": WORKERS, "salt": SALT}), 5))
    check = primary_compute.do_heavy_stuff({"iterations": ITERATIONS, "workers": WORKERS})
    assert check["checksum"] == 3427908807260612608
    report("heavy_demo_24M_6w", f"original loop {baseline:.2f} s, ours {ours * 1000:.1f} ms, "
           f"speedup {baseline / ours:.0f}x (target >= 30x)")


if __name__ == "__main__":
    main()
