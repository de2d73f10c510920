"""Issue #13, class 9: a full disk under the ledger loses nothing.

The ledger lives on a real, tiny tmpfs that is filled up while a command runs (a private
mount namespace, so nothing outside the test sees it). The command's exit code must come
back; the time that could not be written stays in the sandbox's lease (issue 15), which
still counts against the cap; the next command in that sandbox still runs within the lease
(one line says the ledger cannot be written); once there is room the next command writes it
and nothing was lost. (A new sandbox cannot get a lease on a full disk: tests/test_meter.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_workspace, private_mounts_work
from tests.host.helpers import stop_hosts

SCENARIO = r"""
import json, os, subprocess, sys
disk, ws = sys.argv[1], sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", disk], check=True)
def cli(*args):
    p = subprocess.run([sys.executable, "-m", "modal_offload", *args], cwd=ws,
                       capture_output=True)
    return {"rc": p.returncode, "out": p.stdout.decode(), "err": p.stderr.decode()}
steps = {"seed": cli("usage", "add", "0.5")}
mark = os.path.join(os.path.dirname(disk), "started")
run = subprocess.Popen([sys.executable, "-m", "modal_offload", "exec", "-c",
                        f"touch {mark}; sleep 1; exit 7"], cwd=ws, stderr=subprocess.PIPE)
while not os.path.exists(mark):
    if run.poll() is not None:
        break
    os.sched_yield()
fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
try:  # fill the disk up while the command runs (its lease is already written)
    while True:
        os.write(fd, b"\0" * 4096)
except OSError:
    os.close(fd)
steps["full"] = {"rc": run.wait(), "err": run.stderr.read().decode()}
steps["refused"] = cli("exec", "--", "true")
os.unlink(os.path.join(disk, "filler"))
steps["room"] = cli("exec", "--", "true")
steps["ledger"] = open(os.path.join(disk, "usage.json")).read()
print(json.dumps(steps))
"""


@pytest.mark.skipif(not private_mounts_work(),
                    reason="needs root, unshare(1) and mount rights for a tiny filesystem")
@pytest.mark.parametrize("host", ["0", "1"], ids=["in-process", "through-host"])
def test_a_full_disk_keeps_the_exit_code_and_the_charge(tmp_path: Path, tmp_home: Path,
                                                        host: str) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    ws = make_workspace(tmp_path / "ws", files={"data/input.txt": "hello\n"})
    env = {**os.environ, "PRIMARY_MODAL_USAGE_FILE": str(disk / "usage.json"),
           "MODAL_OFFLOAD_HOST": host, "MODAL_OFFLOAD_BACKEND": "local",
           "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.2", "MODAL_OFFLOAD_WHEN_NO_BUDGET": "refuse"}
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private",
                               sys.executable, "-c", SCENARIO, str(disk), str(ws)],
                              env=env, capture_output=True, timeout=120)
    finally:
        stop_hosts(tmp_home)
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert steps["seed"]["rc"] == 0, steps["seed"]
    full = steps["full"]
    assert full["rc"] == 7, full  # the command's own exit code, disk full or not
    assert full["err"].count("\n") == 1 and "could not be written to" in full["err"]
    leased = steps["refused"]
    assert leased["rc"] == 0, leased
    assert leased["err"].count("\n") == 1 and "lease still counts" in leased["err"]
    assert steps["room"]["rc"] == 0 and steps["room"]["err"] == "", steps["room"]
    ledger = json.loads(steps["ledger"])
    # 0.5 added by hand, plus the 1 s run that found the disk full, plus the last run.
    assert ledger["used_min"] >= 0.5 + 1 / 60
    assert ledger["history"][ledger["day"]]["by_source"]["exec"] >= 1 / 60
    assert not list((tmp_home / ".run").glob("**/pending-*"))
