"""Emulator tests drive the REAL modal client (no mocks) against testing.modal_emulator."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

# modal.config reads its TOML file when first imported (during collection, before any fixture
# runs): point it at an empty file so ~/.modal.toml is never read. The fixtures patch the
# loaded config again per test.
if "modal" not in sys.modules:
    os.environ.setdefault("MODAL_CONFIG_PATH", os.devnull)

from testing.modal_emulator.pytest_fixtures import (
    modal_emulator,
    modal_emulator_server,
)

__all__ = ["app_name", "modal_emulator", "modal_emulator_server"]


@pytest.fixture
def app_name() -> str:
    """A unique app name: apps outlive emulator resets, so tests must not share names."""
    return f"emu-test-{uuid.uuid4().hex[:12]}"
