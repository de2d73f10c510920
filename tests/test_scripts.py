"""scripts/: the repository's doors work from any folder without importing its modules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from modal_offload import isolated
from tests.agents.test_hooks_e2e import plant_shadows
from tests.helpers import REPO


def test_cli_fallback_is_the_isolated_bootstrap() -> None:
    # One bootstrap: the shell copy must be the Python one, word for word.
    assert isolated.BOOTSTRAP in (REPO / "scripts" / "_cli.sh").read_text()


def test_cli_fallback_never_imports_workspace_modules(tmp_path: Path) -> None:
    # A checkout without .venv and no modal-offload on PATH: `python3` runs our package.
    repo = tmp_path / "checkout"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    (repo / "src").symlink_to(REPO / "src")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    ws = tmp_path / "ws"
    ws.mkdir()
    canary = plant_shadows(ws)
    env = {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin", "PYTHONPATH": str(ws)}
    done = subprocess.run([str(repo / "scripts" / "modal_exec.sh"), "--help"], cwd=ws,
                          env=env, capture_output=True, timeout=60)
    assert not canary.exists(), canary.read_text()
    assert done.returncode == 0 and b"usage" in done.stdout.lower(), done.stderr
