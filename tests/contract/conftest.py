"""The backend contract suite: the same end-to-end cases against every backend.

Each case drives the real CLI as a subprocess in a fresh workspace. The `backend` fixture
yields the environment that selects a backend: `local` (scratch-folder sandbox) and
`modal` (the real `modal` client against testing/modal_emulator), and `modal-rootfs` (the same
with the emulator in image mode rootfs: the product's real image, isolated sandboxes; skipped
where rootfs mode cannot run, never in CI). `host`, `modal-host` and `modal-rootfs-host` run
the same through the session host, whose commands travel over the session channel (#17).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import make_workspace
from tests.host.helpers import stop_hosts

BACKENDS = ["local", "modal", "host", "modal-rootfs", "modal-host", "modal-rootfs-host"]


@dataclass
class Target:
    name: str
    env: dict[str, str]
    workspace: Path
    emulator: object | None = None
    param: str = ""  # which of BACKENDS


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    ws = make_workspace(tmp_path / "ws", files={"data/input.txt": "hello\n"})
    env = {"MODAL_OFFLOAD_BACKEND": request.param, "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "1"}
    if request.param == "local":
        yield Target("local", env, ws, param="local")
        return
    if request.param == "host":
        # The local backend through the warm session host (issue #8).
        env.update({"MODAL_OFFLOAD_BACKEND": "local", "MODAL_OFFLOAD_HOST": "1"})
        yield Target("host", env, ws, param="host")
        stop_hosts(request.getfixturevalue("tmp_home"))
        return
    rootfs = request.param.startswith("modal-rootfs")
    emulator = request.getfixturevalue("modal_emulator_rootfs" if rootfs else "modal_emulator")
    # The test's own HOME stays (ledger, state); only the client is pointed at the emulator.
    env.update({k: v for k, v in emulator.env().items() if k != "HOME"})
    env["MODAL_OFFLOAD_BACKEND"] = "modal"
    if not request.param.endswith("-host"):
        yield Target("modal", env, ws, emulator, request.param)
        return
    env["MODAL_OFFLOAD_HOST"] = "1"
    yield Target("modal", env, ws, emulator, request.param)
    stop_hosts(request.getfixturevalue("tmp_home"))
