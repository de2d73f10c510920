"""Dollars: what a sandbox of given resources costs per second on Modal.

Modal bills a sandbox per second for its whole life at max(requested, used) CPU and
memory, busy or idle (https://modal.com/docs/guide/sandbox-resources, "Pay for what you
use"). We bill the request: a sandbox that bursts above it costs more than this says, which
`usage reconcile` shows against Modal's own report.

The table is Modal's list price for *Sandboxes* (their CPU and memory rate is three times the
Functions rate; GPUs are the same price), from https://modal.com/pricing as transcribed on
2026-06-27 by https://www.beam.cloud/blog/modal-pricing-explained (modal.com itself is not
reachable from where this was written: unverified against the page). Region and
non-preemptible multipliers are not included. Override any figure in config:

    [prices]
    cpu_core_second = 0.00003942
    gib_second = 0.00000672
    [prices.gpu]
    H100 = 0.001097
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PRICE_SOURCE = "https://modal.com/pricing (via beam.cloud/blog/modal-pricing-explained)"
PRICE_DATE = "2026-06-27"

CPU_CORE_SECOND_USD = 0.00003942  # a physical core (2 vCPU), Sandbox rate
GIB_SECOND_USD = 0.00000672  # a GiB of memory, Sandbox rate
GPU_SECOND_USD: dict[str, float] = {
    "B200": 0.001736,
    "H200": 0.001261,
    "H100": 0.001097,
    "A100-80GB": 0.000694,
    "A100-40GB": 0.000583,
    "A100": 0.000583,  # Modal's "A100" is the 40 GB card
    "L40S": 0.000542,
    "A10G": 0.000306,
    "A10": 0.000306,
    "L4": 0.000222,
    "T4": 0.000164,
}


@dataclass(frozen=True)
class Prices:
    cpu_core_second: float = CPU_CORE_SECOND_USD
    gib_second: float = GIB_SECOND_USD
    gpu_second: Mapping[str, float] = field(default_factory=lambda: dict(GPU_SECOND_USD))

    def per_second(self, cpu: float, memory_mb: int, gpu: str | None) -> float:
        """Dollars per second of a sandbox's life with these requested resources."""
        rate = cpu * self.cpu_core_second + memory_mb / 1024 * self.gib_second
        if gpu:
            kind, count = parse_gpu(gpu)
            rate += count * self.gpu_second[kind]
        return rate

    def with_overrides(self, cpu: float | None, gib: float | None,
                       gpus: Mapping[str, float]) -> Prices:
        table = dict(self.gpu_second)
        table.update({k.upper(): float(v) for k, v in gpus.items()})
        return Prices(self.cpu_core_second if cpu is None else cpu,
                      self.gib_second if gib is None else gib, table)


def parse_gpu(value: str) -> tuple[str, int]:
    """`TYPE[:N]` as the Modal client reads it (modal/_utils/function_utils.py:655-669: the
    type upper-cased, the count an integer after the colon); raises ValueError."""
    kind, sep, count_text = value.partition(":")
    kind = kind.strip().upper()
    if not kind:
        raise ValueError("is empty; use TYPE or TYPE:COUNT, e.g. H100 or A10G:2")
    try:
        count = int(count_text) if sep else 1
    except ValueError:
        raise ValueError(f"has a count that is not a whole number: {count_text!r}") from None
    if count < 1:
        raise ValueError("must ask for at least one GPU")
    if kind not in GPU_SECOND_USD:
        raise ValueError(f"names an unknown GPU type {kind!r} (known: "
                         f"{', '.join(sorted(GPU_SECOND_USD))}; add a price under [prices.gpu])")
    return kind, count


def normalize_gpu(value: str | None) -> str | None:
    if value is None or not value.strip() or value.strip().lower() == "none":
        return None
    kind, count = parse_gpu(value)
    return kind if count == 1 else f"{kind}:{count}"
