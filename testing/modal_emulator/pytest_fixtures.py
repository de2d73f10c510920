"""pytest fixtures for tests that drive the real `modal` client against the emulator.

Use from a conftest.py::

    pytest_plugins = ["testing.modal_emulator.pytest_fixtures"]
    # or: from testing.modal_emulator.pytest_fixtures import modal_emulator, modal_emulator_server

`modal_emulator` (function scope) yields the shared, freshly reset `ModalEmulator`:

* the in-process client is pointed at it (MODAL_SERVER_URL, MODAL_TOKEN_ID, MODAL_TOKEN_SECRET,
  MODAL_CONFIG_PATH set with monkeypatch; the client's other MODAL_* settings removed, the
  project's MODAL_OFFLOAD_* kept; ~/.modal.toml ignored);
* `modal_emulator.subprocess_env()` is the environment for a subprocess running the client or a
  CLI (it also sets HOME to a scratch directory);
* sandbox scratch directories live under the test's `tmp_path / "modal-emulator"`;
* every sandbox is killed when the test ends.

The server itself is session scoped (`modal_emulator_server`) because the client caches its
connection per process; resetting between tests is cheap.

`modal_emulator_rootfs` (and its session-scoped `modal_emulator_rootfs_server`) is the same in
image mode ``rootfs``: images are built for real (layers cached machine-wide) and sandboxes run
isolated inside them. It skips, saying why, where rootfs mode cannot run (not Linux, not root,
mmdebstrap missing); CI sets CI_REQUIRE_ROOTFS=1 so that a skip there fails instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .client_env import forget_server_state, is_client_var
from .rootfs import unavailable_reason as rootfs_unavailable_reason
from .server import ModalEmulator
from .thread import EmulatorThread

# The emulator the in-process client was last pointed at (see point_client_at).
_last_url: str | None = None


@pytest.fixture(scope="session")
def modal_emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorThread]:
    with EmulatorThread(tmp_path_factory.mktemp("modal-emulator")) as emu:
        yield emu


@pytest.fixture
def modal_emulator(
    modal_emulator_server: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModalEmulator]:
    emu = modal_emulator_server.emulator
    emu.reset(base_dir=tmp_path / "modal-emulator")
    point_client_at(emu, monkeypatch)
    yield emu
    emu.reset()


@pytest.fixture(scope="session")
def modal_emulator_rootfs_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EmulatorThread]:
    reason = rootfs_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI_REQUIRE_ROOTFS") == "1":  # CI must run these tests, never skip
            pytest.fail(f"CI_REQUIRE_ROOTFS=1 but {reason}")
        pytest.skip(reason)
    with EmulatorThread(tmp_path_factory.mktemp("modal-emulator-rootfs"), images="rootfs") as emu:
        warm_up(emu)
        yield emu


# Build debian_slim through the real client, so that on a fresh machine the one slow build (the
# Debian root, then apt-get install build-essential: minutes) happens here, once; the first test
# that sets this fixture up gets WARM_UP_TIMEOUT (see pytest_collection_modifyitems). Cached
# machine-wide, it takes about a second.
_WARM_UP = """
import modal
app = modal.App.lookup("modal-emulator-warm-up", create_if_missing=True)
modal.Image.debian_slim().build(app)
"""


WARM_UP_TIMEOUT = 1800


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: the first test that will really run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "modal_emulator_rootfs_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(WARM_UP_TIMEOUT))  # pytest-timeout's marker
            return


def warm_up(emu: EmulatorThread, timeout: float = WARM_UP_TIMEOUT - 60) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WARM_UP],
        env=emu.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        pytest.fail(f"rootfs warm-up build of debian_slim failed:\n{out.stderr[-3000:]}")


@pytest.fixture
def modal_emulator_rootfs(
    modal_emulator_rootfs_server: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModalEmulator]:
    emu = modal_emulator_rootfs_server.emulator
    emu.reset(base_dir=tmp_path / "modal-emulator")
    point_client_at(emu, monkeypatch)
    yield emu
    emu.reset()


def point_client_at(emu: ModalEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the in-process `modal` client talk to `emu` for the rest of the test."""
    for name in list(os.environ):
        if is_client_var(name):  # keeps the project's own MODAL_OFFLOAD_* variables
            monkeypatch.delenv(name)
    for name, value in emu.env().items():
        if name != "HOME":  # the in-process HOME belongs to the test (and its conftest)
            monkeypatch.setenv(name, value)
    config = sys.modules.get("modal.config")
    if config is not None:
        # modal.config read ~/.modal.toml (or MODAL_CONFIG_PATH) when it was first imported,
        # possibly before this fixture ran; make sure no profile value leaks in.
        monkeypatch.setattr(config, "_user_config", {})
        monkeypatch.setattr(config, "user_config_path", emu.env()["MODAL_CONFIG_PATH"])
    client_module = sys.modules.get("modal.client")
    if client_module is not None:
        cached = client_module._Client._client_from_env
        if cached is not None and cached.server_url != emu.url:
            # A client cached for another server (e.g. another emulator) would be reused.
            client_module._Client._client_from_env = None
    global _last_url
    if _last_url != emu.url:
        # Another emulator's environment (its image builder version differs between the host
        # and rootfs modes) and default image must not be reused.
        forget_server_state()
    _last_url = emu.url
