"""The machine-wide layer cache: one builder per layer at a time, and only our own files."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from testing.modal_emulator.rootfs import unavailable_reason
from testing.modal_emulator.rootfs.base import parse_from
from testing.modal_emulator.rootfs.cache import CacheError, LayerCache
from testing.modal_emulator.rootfs.dockerfile import Instruction
from testing.modal_emulator.rootfs.layers import BuildContext, LayerBuilder


def _require_rootfs() -> None:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI_REQUIRE_ROOTFS") == "1":
            pytest.fail(f"CI_REQUIRE_ROOTFS=1 but {reason}")
        pytest.skip(reason)


@pytest.mark.timeout(1800)  # builds the base on a fresh machine
def test_concurrent_builders_of_one_layer_run_it_once() -> None:
    _require_rootfs()
    cache = LayerCache()
    cache.prepare()
    # Two builders, as two emulators (other worktrees, test processes) would be; flock locks
    # belong to open files, so two builders in one process exclude each other the same way.
    first, second = LayerBuilder(cache), LayerBuilder(cache)
    marker = uuid.uuid4().hex
    step = Instruction("RUN", f"sleep 1; echo {marker} > /m", f"RUN sleep 1; echo {marker} > /m")
    logs: list[str] = []

    async def log(text: str) -> None:
        logs.append(text)

    async def build() -> None:
        base = await first.base(parse_from("python:3.11-slim-bookworm"), log)
        one, two = await asyncio.gather(
            first.apply(base, step, BuildContext(), {}, log),
            second.apply(base, step, BuildContext(), {}, log),
        )
        assert one == two
        assert marker in (cache.layer_dir(one.layer_id) / "diff" / "m").read_text()

    asyncio.run(build())
    # Both started before either finished (the step sleeps 1 s); only one ran it.
    assert [s for s in first.steps_run + second.steps_run if marker in s] == [step.text]


def test_a_cache_others_can_write_to_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o775)
    with pytest.raises(CacheError, match="writable by group or others"):
        LayerCache(root).prepare()


def test_a_dead_builders_leftovers_are_removed(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "cache")
    cache.prepare()
    leftover = cache.staging("deadbeef")
    (leftover / "diff" / "junk").write_text("x")
    with cache.locked("busy"):
        in_progress = cache.staging("busy")
        LayerCache(tmp_path / "cache").prepare()
        assert in_progress.exists()  # its builder holds the lock
    assert not leftover.exists()
