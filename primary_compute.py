"""Your heavy work lives here.

Put the expensive logic in `do_heavy_stuff(payload)` and always call it through
`run_heavy(payload)`: it runs remotely (6 CPU / 14 GiB on Modal) while the daily budget and
your credentials allow, and locally otherwise, saying why in one line.

    make heavy PAYLOAD='{"iterations":24000000,"workers":6}'
    python primary_compute.py '{"iterations":2000000,"workers":2}'

The demo below computes the original toolkit's checksum: for each of `workers` contiguous
ranges (the first `iterations % workers` ranges one longer),
`acc = (acc + ((i*i + salt) ^ (i*2654435761))) & (2**64-1)` over the range, and the
per-range results XORed. NumPy does the same arithmetic in cache-sized chunks and threads.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

CPU_CORES = 6
MEMORY_MB = 14 * 1024

_MASK = (1 << 64) - 1
_MULT = np.uint64(2654435761)
_CHUNK = 1 << 16  # 64K uint64s = 512 KiB per buffer: stays in cache


def _range_checksum(start: int, stop: int, salt: int) -> int:
    """Sum over [start, stop) of ((i*i + salt) ^ (i*2654435761)) mod 2**64.

    uint64 arithmetic wraps mod 2**64, and XOR and + only depend on the low 64 bits of
    their operands, so the wrapped result equals Python's exact big-int one.
    """
    salt64 = np.uint64(salt & _MASK)
    offsets = np.arange(_CHUNK, dtype=np.uint64)
    i = np.empty(_CHUNK, dtype=np.uint64)
    a = np.empty(_CHUNK, dtype=np.uint64)
    b = np.empty(_CHUNK, dtype=np.uint64)
    total = 0
    with np.errstate(over="ignore"):
        for pos in range(start, stop, _CHUNK):
            n = min(_CHUNK, stop - pos)
            ii, aa, bb = i[:n], a[:n], b[:n]
            np.add(offsets[:n], np.uint64(pos), out=ii)
            np.multiply(ii, ii, out=aa)
            aa += salt64
            np.multiply(ii, _MULT, out=bb)
            np.bitwise_xor(aa, bb, out=aa)
            total = (total + int(aa.sum(dtype=np.uint64))) & _MASK
    return total


def _ranges(iterations: int, workers: int) -> list[tuple[int, int]]:
    base, extra = divmod(iterations, workers)
    out, start = [], 0
    for k in range(workers):
        stop = start + base + (1 if k < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def do_heavy_stuff(payload: dict[str, Any]) -> dict[str, Any]:
    iterations = int(payload.get("iterations", 24_000_000))
    workers = int(payload.get("workers", min(6, os.cpu_count() or 1)))
    salt = int(payload.get("salt", 17))
    started = time.perf_counter()
    threads = max(1, min(workers, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=threads) as pool:  # NumPy releases the GIL
        parts = pool.map(lambda r: _range_checksum(r[0], r[1], salt), _ranges(iterations, workers))
        checksum = 0
        for part in parts:
            checksum ^= part
    return {
        "iterations": iterations,
        "workers": workers,
        "checksum": checksum,
        "duration_s": round(time.perf_counter() - started, 6),
        "host": socket.gethostname(),
    }


def run_heavy(
    payload: dict[str, Any],
    max_min_per_day: float | None = None,
    allow_local_fallback: bool = True,
    force_mode: str | None = None,
) -> dict[str, Any]:
    """Run `do_heavy_stuff(payload)` remotely under the daily budget, or locally."""
    from modal_offload.heavy import run_heavy as _run_heavy

    return _run_heavy(payload, max_min_per_day=max_min_per_day,
                      allow_local_fallback=allow_local_fallback, force_mode=force_mode)


if __name__ == "__main__":
    print(json.dumps(run_heavy(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}")), indent=2))
