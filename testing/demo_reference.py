"""The original toolkit's demo loop, pure Python with multiprocessing: the baseline that
benchmarks compare against and that tests check the fast demo with."""

from __future__ import annotations

from multiprocessing import Pool

MASK = (1 << 64) - 1


def range_checksum(bounds: tuple[int, int, int]) -> int:
    start, stop, salt = bounds
    acc = 0
    for i in range(start, stop):
        acc = (acc + ((i * i + salt) ^ (i * 2654435761))) & MASK
    return acc


def split(iterations: int, workers: int, salt: int) -> list[tuple[int, int, int]]:
    base, extra = divmod(iterations, workers)
    out, start = [], 0
    for k in range(workers):
        stop = start + base + (1 if k < extra else 0)
        out.append((start, stop, salt))
        start = stop
    return out


def checksum(iterations: int, workers: int, salt: int = 17, processes: bool = False) -> int:
    parts = split(iterations, workers, salt)
    if processes:
        with Pool(workers) as pool:
            results = pool.map(range_checksum, parts)
    else:
        results = [range_checksum(p) for p in parts]
    out = 0
    for r in results:
        out ^= r
    return out
