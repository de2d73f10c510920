"""The image is part of the session's identity on the local backend too (issue 12): a changed
input moves the workspace to a new session, says what changed, and ends the old one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import cli, local_backend_env, make_workspace


def sandboxes(home: Path) -> list[str]:
    folder = home / ".cache" / "modal-offload" / "sandboxes"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def test_a_requirements_change_moves_the_session(tmp_path: Path, tmp_home: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={"requirements.txt": "numpy==2.1.0\n"})
    env = local_backend_env()
    first = cli("exec", "--", "true", cwd=ws, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr == b""  # nothing to say on a first run of the local backend
    [old] = sandboxes(tmp_home)
    again = cli("exec", "--", "true", cwd=ws, env=env)
    assert again.stderr == b"" and sandboxes(tmp_home) == [old]  # nothing changed: reused
    (ws / "requirements.txt").write_text("numpy==2.1.0\nrich>=13\n")
    moved = cli("exec", "--", "true", cwd=ws, env=env)
    assert moved.returncode == 0, moved.stderr
    [new] = sandboxes(tmp_home)
    assert new != old
    lines = moved.stderr.decode().splitlines()
    assert lines == [f"modal-offload: the remote image changed (requirements: +rich>=13): "
                     f"new session {new}; ended {old}"]
    status = cli("session", "status", cwd=ws, env=env)
    assert new.encode() in status.stdout and old.encode() not in status.stdout


def test_env_check_never_imports_workspace_modules(tmp_path: Path, tmp_home: Path) -> None:
    # A `json.py` (a cloned repo's, or one a remote command wrote) that passes for the real
    # module, so only the canary tells: the probe must not import it on either side.
    canary = tmp_path / "canary"
    shadow = (
        "import os, sys\n"
        f"open({str(canary)!r}, 'a').write(os.environ.get('MODAL_OFFLOAD_REMOTE', 'local'))\n"
        "del sys.modules['json']\n"
        "sys.path = [p for p in sys.path if p not in ('', os.getcwd())]\n"
        "import json as _real\n"
        "sys.modules['json'] = _real\n"
        "globals().update(_real.__dict__)\n")
    ws = make_workspace(tmp_path / "ws", files={"json.py": shadow})
    # The console script, as users run it (`python -m` would itself import the workspace's).
    script = Path(sys.executable).parent / "modal-offload"
    out = subprocess.run([str(script), "env", "check"], cwd=ws, capture_output=True,
                         env={**os.environ, **local_backend_env()}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not canary.exists(), canary.read_text()
