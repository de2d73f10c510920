"""Issue 17, pipelining: the command rides in its sync up's write, yet a sync up that fails
remotely (here: the sandbox's disk is full) still means what it meant before: the command
is not run, remotely or here, and the user gets the same one line and exit status as on
the plain path (`MODAL_OFFLOAD_CHANNEL=0`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modal_offload import paths
from tests.helpers import make_workspace, private_mounts_work
from tests.host.helpers import stop_hosts

SCENARIO = r"""
import json, os, subprocess, sys
sandboxes, ws = sys.argv[1], sys.argv[2]
os.makedirs(sandboxes, exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", sandboxes], check=True)
def cli(*args):
    p = subprocess.run([sys.executable, "-m", "modal_offload", *args], cwd=ws,
                       capture_output=True, stdin=subprocess.DEVNULL)
    return {"rc": p.returncode, "out": p.stdout.decode(), "err": p.stderr.decode()}
steps = {"warm": cli("exec", "--", "true"), "again": cli("exec", "--", "true")}
with open(os.path.join(ws, "big.bin"), "wb") as fh:
    fh.write(os.urandom(3 << 20))  # more than the sandbox's disk holds
steps["full"] = cli("exec", "-c", "echo ran > ran.txt")
steps["ran_remotely"] = any("ran.txt" in names for _, _, names in os.walk(sandboxes))
print(json.dumps(steps))
"""


def _scenario(tmp_path: Path, tmp_home: Path, channel: str) -> dict[str, Any]:
    ws = make_workspace(tmp_path / f"ws-{channel}", files={"data/input.txt": "hello\n"})
    env = {**os.environ, "MODAL_OFFLOAD_HOST": "1", "MODAL_OFFLOAD_BACKEND": "local",
           "MODAL_OFFLOAD_CHANNEL": channel}
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private",
                               sys.executable, "-c", SCENARIO, str(paths.sandboxes_dir()),
                               str(ws)], env=env, capture_output=True, timeout=120)
    finally:
        stop_hosts(tmp_home)
    assert done.returncode == 0, done.stderr
    steps: dict[str, Any] = json.loads(done.stdout)
    assert not (ws / "ran.txt").exists()
    return steps


@pytest.mark.skipif(not private_mounts_work(),
                    reason="needs root, unshare(1) and mount rights for a tiny filesystem")
def test_a_failed_sync_up_runs_nothing_as_on_the_plain_path(tmp_path: Path,
                                                            tmp_home: Path) -> None:
    results = {channel: _scenario(tmp_path, tmp_home, channel) for channel in ("1", "0")}
    for channel, steps in results.items():
        assert steps["warm"]["rc"] == 0 and steps["again"]["rc"] == 0, steps
        full = steps["full"]
        assert full["rc"] != 0 and full["out"] == "", (channel, full)
        assert full["err"].count("\n") == 1 and "sync up failed" in full["err"], (channel, full)
        assert steps["ran_remotely"] is False, channel
    assert results["1"]["full"]["rc"] == results["0"]["full"]["rc"]
