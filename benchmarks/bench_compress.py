"""Would compressing sync payloads pay (issue 17 item 3)? Bytes on the wire for a first sync
of a real source tree (this repository's src/, tests/ and testing/, as `pack` sends them),
raw and through zlib at levels 1 and 6, with the CPU each level costs, and the break-even
link speed: below it compression saves more transfer time than it costs.

    python benchmarks/bench_compress.py
"""

from __future__ import annotations

import time
import zlib

from _common import REPO, report

from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.manifest import scan
from modal_offload.sync.tarstream import CountingWriter, pack


def main() -> None:
    manifest = scan(REPO, IgnoreRules.load(REPO))
    paths = sorted(p for p in manifest.entries
                   if p.split("/")[0] in ("src", "tests", "testing", "benchmarks"))
    parts: list[bytes] = []
    writer = CountingWriter(parts.append)
    pack(REPO, paths, manifest.entries, writer)
    writer.flush()
    raw = b"".join(parts)
    report("first sync payload, raw", f"{len(paths)} entries, {len(raw) / 1e6:.2f} MB")
    for level in (1, 6):
        start = time.perf_counter()
        packed = zlib.compress(raw, level)
        seconds = time.perf_counter() - start
        saved = len(raw) - len(packed)
        # Compression pays while the link moves fewer bytes per second than this.
        breakeven = saved / seconds / 1e6 if seconds else float("inf")
        report(f"zlib level {level}",
               f"{len(packed) / 1e6:.2f} MB ({len(raw) / len(packed):.1f}x smaller), "
               f"{seconds * 1000:.0f} ms CPU, pays below {breakeven * 8:.0f} Mbit/s")


if __name__ == "__main__":
    main()
