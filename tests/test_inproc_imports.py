"""The in-process `exec` path (no session host) loads only what a warm command needs.

Issue 17: a warm `exec -- true` must add at most 100 ms, and most of that budget goes on
imports. Each module below was on that path once and was moved to where it is used (a
changed tree, a new image, the Modal backend, an error). This test keeps them off it; the
wall time itself is measured by `make bench` (benchmarks/bench_exec.py), never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import cli, local_backend_env, make_workspace

# Never on the warm in-process path: the Modal client and what it drags in, dev tools, and
# what only a sync that has something to apply, a derivation or a failure needs.
NEVER = {
    "modal", "modal_proto", "grpclib", "synchronicity", "google", "aiohttp", "asyncio",
    "rich", "click", "typer", "hypothesis", "watchfiles", "filelock",
    "argparse",  # the exec parser is exec_args.py; argparse is for the other commands
    "tarfile",  # sync's archives: only when something travels
    "uuid", "platform",  # ids come from os.urandom
    "hashlib", "_hashlib",  # OpenSSL; the workspace id uses CPython's own sha256
    "logging",  # only on rare failure paths
    "pathspec", "typing_extensions",  # only for a tree with ignore files
    "modal_offload.backends.modal", "modal_offload.sync.extract", "modal_offload.sync.safety",
    "modal_offload.image.depfiles", "modal_offload.heavy", "modal_offload.host.server",
    "modal_offload.channel",
}

_PROBE = """
import json, sys
from modal_offload.cli import main
code = main(["exec", "--", "true"])
with open(sys.argv[1], "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def _loaded(ws: Path, out: Path) -> set[str]:
    env = {**os.environ, **local_backend_env(), "MODAL_OFFLOAD_HOST": "0"}
    run = subprocess.run([sys.executable, "-c", _PROBE, str(out)], cwd=ws, env=env,
                         capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert data["code"] == 0
    return set(data["modules"])


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded
                  if m in NEVER or any(m.startswith(f"{n}.") for n in NEVER))


def test_warm_in_process_exec_loads_nothing_heavy(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={f"f{i}.txt": "x" * i for i in range(20)})
    for path in ws.iterdir():  # older than the racy window: a warm scan hashes nothing
        os.utime(path, (time.time() - 60,) * 2)
    env = {**local_backend_env(), "MODAL_OFFLOAD_HOST": "0"}
    first = cli("exec", "--", "true", cwd=ws, env=env)  # session, image, first sync
    assert first.returncode == 0, first.stderr
    loaded = _loaded(ws, tmp_path / "modules.json")
    assert "modal_offload.gateway" in loaded  # it did run in-process, through the gateway
    assert _heavy(loaded) == []


def test_a_remote_change_loads_the_extractor_only_then(tmp_path: Path) -> None:
    """The other side of the same guard: what was moved out is still loaded when needed,
    and the change still arrives."""
    ws = make_workspace(tmp_path / "ws", files={".gitignore": "*.log\n", "a.txt": "a"})
    env = {**local_backend_env(), "MODAL_OFFLOAD_HOST": "0"}
    assert cli("exec", "--", "true", cwd=ws, env=env).returncode == 0
    probe = _PROBE.replace('["exec", "--", "true"]', '["exec", "-c", "echo made > made.txt"]')
    out = tmp_path / "modules.json"
    run = subprocess.run([sys.executable, "-c", probe, str(out)], cwd=ws,
                         env={**os.environ, **env}, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(out.read_text())["modules"])
    assert (ws / "made.txt").read_text() == "made\n"
    assert {"modal_offload.sync.extract", "tarfile", "pathspec"} <= loaded
    assert "modal" not in loaded
