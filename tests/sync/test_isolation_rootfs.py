"""Issue 13, class 6 in a real image: the emulator's rootfs mode runs the sandbox on a
Debian root with our package only in /root (add_local_python_source), as Modal does, so
`python -I` finding it through Session.package_dir, not PYTHONPATH, is tested for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from testing.modal_emulator import ModalEmulator
from tests.helpers import make_workspace

ENV = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5"}


def console(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    # The installed script: unlike `python -m`, the local CLI itself ignores the cwd.
    script = Path(sys.executable).parent / "modal-offload"
    return subprocess.run([str(script), *args], cwd=cwd, env={**os.environ, **ENV},
                          capture_output=True, timeout=600)


def test_workspace_modules_cannot_shadow_ours_in_a_real_image(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path) -> None:
    files = {f"{m}.py": "raise SystemExit('shadowed')\n"
             for m in ("json", "tarfile", "argparse", "pathspec", "runpy")}
    files["compute.py"] = "def work(payload):\n    return {'twice': payload['n'] * 2}\n"
    ws = make_workspace(tmp_path / "ws", 'heavy_entry = "compute:work"\n', files)
    out = console("exec", "--", "echo", "hi", cwd=ws)
    assert (out.returncode, out.stdout) == (0, b"hi\n"), out.stderr.decode()[-2000:]
    heavy = console("heavy", "--mode", "modal", "--payload", '{"n": 21}', cwd=ws)
    assert heavy.returncode == 0, heavy.stderr.decode()[-2000:]
    assert json.loads(heavy.stdout)["twice"] == 42
