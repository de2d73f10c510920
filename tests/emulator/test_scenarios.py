"""The live tier's scenarios (testing/scenarios.py), run against the emulator: the same list
`make live-check` runs against real Modal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testing.modal_emulator import ModalEmulator
from testing.scenarios import SCENARIOS, Scenario, run_scenario

ROOTFS_FIXTURE = "modal_emulator_rootfs"  # the rootfs-mode emulator (branch emu-rootfs)


class EmulatorTarget:
    def __init__(self, emu: ModalEmulator) -> None:
        self.emu = emu
        self.images = str(getattr(emu, "images", "host"))
        self.name = f"emulator ({self.images} images)"

    def env(self) -> dict[str, str]:
        return {k: v for k, v in self.emu.env().items() if k != "HOME"}

    def skip(self, scenario: Scenario) -> str | None:
        if scenario.needs_images and self.images != "rootfs":
            return "needs real images: only the emulator's rootfs mode builds them"
        return None


@pytest.fixture(params=["host", "rootfs"])
def emulator(request: pytest.FixtureRequest) -> ModalEmulator:
    if request.param == "host":
        emu: ModalEmulator = request.getfixturevalue("modal_emulator")
        return emu
    try:
        rootfs: ModalEmulator = request.getfixturevalue(ROOTFS_FIXTURE)
    except pytest.FixtureLookupError:
        pytest.skip(f"no {ROOTFS_FIXTURE} fixture: the rootfs image mode is not merged yet")
    return rootfs


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_on_the_emulator(emulator: ModalEmulator, scenario: Scenario,
                                  tmp_path: Path) -> None:
    target = EmulatorTarget(emulator)
    row = run_scenario(scenario, target, scratch=tmp_path)
    if row.status == "skip":
        pytest.skip(row.detail)
    assert row.status == "ok", row.line()
    # Its sandboxes were cleaned up, and its remote time was charged.
    assert not [s for s in emulator.sandboxes() if s.running]
    assert row.cost_min > 0


def test_live_check_without_credentials_says_so(tmp_home: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "testing.live_check"], capture_output=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"live-check: not run: no Modal credentials")
    assert out.stdout.count(b"\n") == 1
