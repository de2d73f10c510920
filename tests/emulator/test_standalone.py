"""The emulator as a separate process, and the release re-verification script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from testing.modal_emulator.client_env import is_client_var

REPO = Path(__file__).resolve().parents[2]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not is_client_var(k)}
    env.update(extra)
    return env


def test_standalone_server_serves_the_real_client(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testing.modal_emulator",
            "--port",
            "0",
            "--base-dir",
            str(tmp_path),
            "--rtt-ms",
            "150",
        ],
        cwd=REPO,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        exports: dict[str, str] = {}
        while len(exports) < 5:
            key, _, value = server.stdout.readline().strip().removeprefix("export ").partition("=")
            exports[key] = value
        assert exports["MODAL_SERVER_URL"] == url
        script = textwrap.dedent(
            """
            import time
            import modal
            app = modal.App.lookup("standalone", create_if_missing=True)
            sb = modal.Sandbox.create(app=app, workdir="/w", timeout=60)
            p = sb.exec("sh", "-c", "echo hello > f.txt && cat f.txt")
            print(p.stdout.read().strip(), p.wait())
            started = time.monotonic()
            sb.exec("true").wait()  # warm: start + wait, each one injected round trip
            print(time.monotonic() - started >= 0.3)
            sb.terminate()
            """
        )
        client = subprocess.run(
            [sys.executable, "-c", script],
            env=_clean_env(**exports),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.split() == ["hello", "0", "True"]
        # The sandbox's scratch filesystem lives under --base-dir.
        assert [p.read_text() for p in tmp_path.glob("sb-*/w/f.txt")] == ["hello\n"]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        if server.stdout is not None:
            server.stdout.close()


# Also verifies image mode rootfs, which on a fresh machine first builds debian_slim (minutes).
@pytest.mark.timeout(1800)
def test_verify_script_passes_for_the_pinned_client() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "testing.modal_emulator.verify"],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unimplemented RPCs called: none" in result.stdout
    assert result.stdout.rstrip().endswith("VERIFIED")
