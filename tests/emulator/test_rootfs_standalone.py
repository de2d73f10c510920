"""`python -m testing.modal_emulator --images rootfs`: closing the emulator ends its containers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from testing.modal_emulator.client_env import is_client_var
from testing.modal_emulator.rootfs import unavailable_reason
from tests.emulator.test_rootfs_isolation import _host_pids_with, _mounts_mentioning

REPO = Path(__file__).resolve().parents[2]


def _require_rootfs() -> None:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI_REQUIRE_ROOTFS") == "1":
            pytest.fail(f"CI_REQUIRE_ROOTFS=1 but {reason}")
        pytest.skip(reason)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not is_client_var(k)}
    env.update(extra)
    return env


def test_stopping_the_emulator_ends_containers_without_leftovers(tmp_path: Path) -> None:
    _require_rootfs()
    marker = f"marker-{uuid.uuid4().hex}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testing.modal_emulator",
            "--images",
            "rootfs",
            "--base-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()
        exports: dict[str, str] = {}
        while len(exports) < 5:
            key, _, value = server.stdout.readline().strip().removeprefix("export ").partition("=")
            exports[key] = value
        script = textwrap.dedent(
            f"""
            import modal
            app = modal.App.lookup("standalone-rootfs", create_if_missing=True)
            sb = modal.Sandbox.create(app=app, timeout=120)
            p = sb.exec("sh", "-c", "python3 -c 'import time; time.sleep(600)' {marker} "
                        ">/dev/null 2>&1 & which python3")
            print(p.stdout.read().strip(), p.wait())
            """
        )
        client = subprocess.run(
            [sys.executable, "-c", script],
            env=_clean_env(**exports),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.split() == ["/usr/local/bin/python3", "0"]
        assert _host_pids_with(marker)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        if server.stdout is not None:
            server.stdout.close()
    assert not _host_pids_with(marker)
    assert not _mounts_mentioning(str(tmp_path))
    assert not list(tmp_path.glob("sb-*"))
