"""Workspace billing, from the emulator's own sandbox records (issue 15).

`Workspace.billing.report()` in the pinned client (modal/_workspace.py:378-442) hydrates the
workspace with `WorkspaceNameLookup` (modal/_workspace.py:103) and streams
`WorkspaceBillingReport` items (unary-stream, :441). Semantics kept from its docstring: the
start is rounded down to its interval, partial final intervals (ending after `end`) are left
out, timestamps are UTC, resolution "h" or "d", tags only those named in `tag_names` ("*" for
all). Each row is one sandbox in one interval (unverified: Modal may attribute sandbox cost
to the App; the README says so), billed per second of its life at its requested resources
(modal.com/docs/guide/sandbox-resources: max(request, used); the emulator never uses more)
with the emulator's own copy of Modal's price list (`ProviderPrices`; kept apart from
modal_offload's table on purpose: the emulator is the provider, and `usage reconcile` compares
two independent sources), or `ModalEmulator.prices` when a test sets one.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from grpclib.server import Stream
from modal_proto import api_pb2

if TYPE_CHECKING:
    from .records import SandboxRecord
    from .server import ModalEmulator

WORKSPACE_NAME = "emulator-workspace"
_RESOLUTIONS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1)}


@dataclass(frozen=True)
class ProviderPrices:
    """Modal's list price for sandboxes, https://modal.com/pricing (2026-06-27)."""

    cpu_core_second: float = 0.00003942
    gib_second: float = 0.00000672
    gpu_second: dict[str, float] = field(default_factory=lambda: {
        "B200": 0.001736, "H200": 0.001261, "H100": 0.001097, "A100-80GB": 0.000694,
        "A100-40GB": 0.000583, "A100": 0.000583, "L40S": 0.000542, "A10G": 0.000306,
        "A10": 0.000306, "L4": 0.000222, "T4": 0.000164})


def _floor(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return epoch + ((moment - epoch) // step) * step


def _gpu(record: SandboxRecord) -> tuple[str, int] | None:
    gpu = record.request.definition.resources.gpu_config
    return (gpu.gpu_type, max(1, gpu.count)) if gpu.gpu_type else None


def sandbox_costs(record: SandboxRecord, start: float, end: float,
                  prices: ProviderPrices) -> dict[str, Decimal]:
    """What the sandbox's life within [start, end) costs, by resource."""
    until = record.terminated_at if record.terminated_at is not None else time.time()
    seconds = max(0.0, min(until, end) - max(record.created_at, start))
    if seconds <= 0:
        return {}
    cpu = record.cpu or 0.125  # Modal's default request (modal.com/docs/guide/resources)
    memory_gib = (record.memory_mb or 128) / 1024
    out = {"CPU": Decimal(repr(seconds * cpu * prices.cpu_core_second)),
           "Memory": Decimal(repr(seconds * memory_gib * prices.gib_second))}
    gpu = _gpu(record)
    if gpu:
        kind, count = gpu
        out[f"GPU {kind}"] = Decimal(repr(seconds * count * prices.gpu_second[kind]))
    return out


class BillingRpcs:
    emu: ModalEmulator

    async def WorkspaceNameLookup(
        self, stream: Stream[empty_pb2.Empty, api_pb2.WorkspaceNameLookupResponse]
    ) -> None:
        await stream.recv_message()
        await stream.send_message(api_pb2.WorkspaceNameLookupResponse(
            workspace_name=WORKSPACE_NAME, username=WORKSPACE_NAME))

    async def WorkspaceBillingReport(
        self, stream: Stream[api_pb2.WorkspaceBillingReportRequest,
                             api_pb2.WorkspaceBillingReportItem]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        step = _RESOLUTIONS.get(req.resolution)
        if step is None:
            raise GRPCError(Status.INVALID_ARGUMENT,
                            f"Invalid resolution {req.resolution!r}; use 'h' or 'd'")
        if not req.HasField("start_timestamp"):
            raise GRPCError(Status.INVALID_ARGUMENT, "start_timestamp is required")
        start = _floor(req.start_timestamp.ToDatetime(tzinfo=dt.timezone.utc), step)
        end = req.end_timestamp.ToDatetime(tzinfo=dt.timezone.utc)
        prices = self.emu.prices or ProviderPrices()
        names = set(req.tag_names)
        records = [sb.record for sb in self.emu.registry.all()]
        app_names = {rec.app_id: rec.app_name or "" for rec in records}
        moment = start
        while moment + step <= end:  # partial final intervals are left out
            lo, hi = moment.timestamp(), (moment + step).timestamp()
            for rec in records:
                costs = sandbox_costs(rec, lo, hi, prices)
                if not costs:
                    continue
                item = api_pb2.WorkspaceBillingReportItem(
                    object_id=rec.sandbox_id, description=rec.name or app_names[rec.app_id],
                    environment_name="main", cost=str(sum(costs.values())),
                    cost_by_resource={k: str(v) for k, v in costs.items()},
                    tags={k: v for k, v in rec.tags.items() if "*" in names or k in names})
                item.interval.FromDatetime(moment)
                await stream.send_message(item)
            moment += step
