"""Fixtures for routing tests: a workspace, a small PATH, and real shells in the tmp HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers import cli, make_workspace

needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
SHELLS = ["bash", pytest.param("zsh", marks=needs_zsh)]

# A tool that tells where it ran: remote markers, bypass marker, its own path.
PROBE_TOOL = """#!/bin/sh
echo "remote=${MODAL_OFFLOAD_REMOTE:-} bypass=${MODAL_OFFLOAD_BYPASS:-} self=$0 args=$*"
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def tool_bin(tmp_path: Path) -> Path:
    """A bin dir with `mo-probe` (routed) and `git`-free names only."""
    folder = tmp_path / "bin"
    folder.mkdir()
    probe = folder / "mo-probe"
    probe.write_text(PROBE_TOOL)
    probe.chmod(0o755)
    return folder


@pytest.fixture
def small_path(tool_bin: Path) -> str:
    """Our tool dir plus the system dirs the shells themselves need."""
    return os.pathsep.join([str(tool_bin), "/usr/local/bin", "/usr/bin", "/bin"])


def shell_env(path: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = path
    env["MODAL_OFFLOAD_BACKEND"] = "local"
    for name in ("MODAL_SHIMS_ACTIVE", "MODAL_OFFLOAD_SHIMS_DIR", "MODAL_OFFLOAD_SAVED_PATH"):
        env.pop(name, None)
    env.update(extra)
    return env


def run(argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 30
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def install_shims(ws: Path, env: Mapping[str, str]) -> None:
    out = cli("shims", "install", cwd=ws, env=env)
    assert out.returncode == 0, out.stderr.decode()
