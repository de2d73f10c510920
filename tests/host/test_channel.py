"""The persistent session channel (issue 17) through the host, local backend: warm commands
run over one agent with no backend exec of their own, and a killed agent is survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from modal_offload import paths
from tests.helpers import cli, spawn_cli
from tests.host.helpers import alive, host_pids, wait_for


def exec_(ws: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return cli("exec", *args, cwd=ws)


def backend_execs() -> int:
    """Backend execs so far in the one local session (its own bookkeeping)."""
    (meta,) = paths.sandboxes_dir().glob("*/session.json")
    return int(json.loads(meta.read_text())["exec_count"])


def agents(host: int) -> list[int]:
    """The host's channel agents (its children running modal_offload.channel.agent)."""
    found = []
    for task in Path(f"/proc/{host}/task").iterdir():
        try:  # a thread may end between the listing and the read
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"modal_offload.channel.agent" in cmdline:
                found.append(int(pid))
    return found


def test_warm_commands_need_no_backend_exec(host_env: dict[str, str], ws: Path,
                                            tmp_home: Path) -> None:
    first = exec_(ws, "-c", "cat data/input.txt; echo made > made.txt")
    assert (first.returncode, first.stdout) == (0, b"hello\n"), first.stderr
    assert (ws / "made.txt").read_text() == "made\n"  # the agent saw it: collected
    (host,) = host_pids(tmp_home)
    assert len(agents(host)) == 1
    exec_(ws, "--", "true")
    before = backend_execs()
    for _ in range(3):  # no change anywhere: nothing but the command, over the channel
        assert exec_(ws, "--", "true").returncode == 0
    assert backend_execs() == before
    made = exec_(ws, "-c", "echo again > again.txt; exit 4")
    assert made.returncode == 4 and (ws / "again.txt").read_text() == "again\n"
    (ws / "local.txt").write_text("up\n")
    assert exec_(ws, "--", "cat", "local.txt").stdout == b"up\n"
    assert len(agents(host)) == 1  # still the same one agent


def test_a_killed_agent_is_survived(host_env: dict[str, str], ws: Path,
                                    tmp_home: Path) -> None:
    assert exec_(ws, "--", "true").returncode == 0  # the channel is up
    (host,) = host_pids(tmp_home)
    (agent,) = agents(host)
    token = f"survivor-{os.getpid()}"
    proc = spawn_cli("exec", "-c", f"echo partial > partial.txt; echo started; "
                                   f"sh -c 'sleep 60; echo {token}'",
                     cwd=ws, env=host_env)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    os.kill(agent, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    # Its fate is reported: stopped, as a dropped ssh connection reports (255).
    assert proc.returncode == 255 and b"lost the session channel" in err, err
    assert (ws / "partial.txt").read_text() == "partial\n"  # nothing lost: synced back
    assert wait_for(lambda: subprocess.run(["pgrep", "-f", f"sleep 60; echo {token}"],
                                           capture_output=True).stdout == b"")
    again = exec_(ws, "-c", "cat partial.txt; echo next > next.txt")
    assert again.returncode == 0 and again.stdout == b"partial\n", again.stderr
    assert (ws / "next.txt").read_text() == "next\n"
    assert wait_for(lambda: [a for a in agents(host) if a != agent] != [])  # reopened
    assert not alive(agent)
    later = exec_(ws, "--", "cat", "next.txt")
    assert later.stdout == b"next\n"
