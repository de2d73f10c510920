"""Shared test helpers: drive the real CLI as a subprocess, make workspaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modal_offload.installation import Step, fix

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
        input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "modal_offload", *args], cwd=cwd,
                          env=full_env, input=input, capture_output=True, timeout=timeout)


def make_workspace(root: Path, config: str = "", files: Mapping[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / ".modal-offload.toml").write_text(config)
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def ledger(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / ".primary_compute_modal_usage.json").read_text())
    return data


def local_backend_env() -> dict[str, str]:
    """The local sandbox stands in for the remote: auto/modal modes run for real."""
    return {"MODAL_OFFLOAD_BACKEND": "local"}


def spawn_cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None,
              stderr: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """The real CLI running in the background, stdout (and stderr) piped, no stdin."""
    return subprocess.Popen([sys.executable, "-m", "modal_offload", *args], cwd=cwd,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=stderr, stdin=subprocess.DEVNULL)


def install_hint(step: Step, cwd: Path) -> bytes:
    """What `installation.fix(step)` tells a CLI process of this environment running in `cwd`
    (inside our repository a Makefile door, elsewhere a command that runs from there)."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return fix(step).encode()
    finally:
        os.chdir(old)


def private_mounts_work() -> bool:
    """True when this process may mount in a private namespace (root with CAP_SYS_ADMIN,
    unshare(1) installed): tests that need a tiny or private filesystem use one."""
    import shutil

    if os.getuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t",
                            "tmpfs", "tmpfs", "/mnt"], capture_output=True)
    return probe.returncode == 0
