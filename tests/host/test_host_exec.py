"""`modal-offload exec` through the session host, end to end (local backend)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import cli, ledger, spawn_cli
from tests.host.helpers import alive, host_pids, wait_for

PY = sys.executable


def exec_(ws: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return cli("exec", *args, cwd=ws, **kw)  # type: ignore[arg-type]


def test_exec_runs_in_one_warm_host(host_env: dict[str, str], ws: Path, tmp_home: Path) -> None:
    first = exec_(ws, "-c", "cat data/input.txt; echo made > out.txt; exit 3")
    assert (first.returncode, first.stdout, first.stderr) == (3, b"hello\n", b"")
    assert (ws / "out.txt").read_text() == "made\n"
    pids = host_pids(tmp_home)
    assert len(pids) == 1 and alive(pids[0])
    second = exec_(ws, "--", "cat", "out.txt")
    assert second.stdout == b"made\n" and host_pids(tmp_home) == pids
    status = cli("host", "status")
    assert f"pid {pids[0]}" in status.stdout.decode() and "sessions: mo-" in status.stdout.decode()


def test_streams_are_byte_exact_and_stdin_is_passed(host_env: dict[str, str], ws: Path) -> None:
    data = os.urandom(200_000)
    out = exec_(ws, "--", PY, "-c", "import sys; d = sys.stdin.buffer.read();"
                "sys.stdout.buffer.write(d[::-1]); sys.stderr.buffer.write(bytes(range(256)))",
                input=data)
    assert out.returncode == 0
    assert out.stdout == data[::-1] and out.stderr == bytes(range(256))


def test_tty_follows_the_client(host_env: dict[str, str], ws: Path, tmp_home: Path) -> None:
    """A pty as the client's stdout/stderr: local fallbacks run in the client and see it;
    remote commands get the client's TERM (not the host's), and the host sees a TTY on
    the fds it was passed (its progress-bar decision)."""
    exec_(ws, "--", "true", env={"TERM": "dumb"})  # the host starts with TERM=dumb
    probe = ("import os, sys; print(sys.stdout.isatty(), os.environ.get('TERM'),"
             " os.environ.get('MODAL_OFFLOAD_REMOTE'))")

    def under_pty(extra: dict[str, str]) -> bytes:
        primary, secondary = pty.openpty()
        env = {**os.environ, "TERM": "xterm-test", **extra}
        proc = subprocess.Popen([PY, "-m", "modal_offload", "exec", "--", PY, "-c", probe],
                                cwd=ws, env=env, stdin=subprocess.DEVNULL, stdout=secondary,
                                stderr=secondary)
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=30) == 0
        os.close(primary)
        return b"".join(chunks).replace(b"\r\n", b"\n")

    remote = under_pty({})
    assert remote == b"False xterm-test 1\n"  # remote stdout is a pipe by design
    local = under_pty({"PRIMARY_MODAL_MAX_MIN_PER_DAY": "0"})
    assert local.endswith(b"True xterm-test None\n") and b"running locally" in local


def test_twenty_concurrent_commands_in_one_workspace(host_env: dict[str, str],
                                                     ws: Path, tmp_home: Path) -> None:
    exec_(ws, "--", "true")  # start the host once, so all twenty share it
    results: dict[int, subprocess.CompletedProcess[bytes]] = {}

    def one(i: int) -> None:
        results[i] = exec_(ws, "-c", f"echo {i}-$(cat data/input.txt); echo {i} > out-{i}.txt;"
                                     f" sleep 0.3; exit {i % 7}", timeout=120)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(20):
        assert results[i].returncode == i % 7, results[i].stderr
        assert results[i].stdout == f"{i}-hello\n".encode()
        assert (ws / f"out-{i}.txt").read_text() == f"{i}\n"
    assert len(host_pids(tmp_home)) == 1


def test_killing_the_host_mid_command(host_env: dict[str, str], ws: Path,
                                      tmp_home: Path) -> None:
    before = sorted(str(p.relative_to(ws)) for p in ws.rglob("*"))
    proc = subprocess.Popen(
        [PY, "-m", "modal_offload", "exec", "-c",
         "echo started; sleep 1.5; echo late > late.txt; echo x > data/input.txt"],
        cwd=ws, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    time.sleep(0.5)  # at least one ledger heartbeat (0.2 s)
    (pid,) = host_pids(tmp_home)
    os.kill(pid, signal.SIGKILL)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 125
    assert err.count(b"\n") == 1 and b"session host stopped" in err
    assert ledger(tmp_home)["used_min"] > 0
    time.sleep(1.5)  # the orphaned remote command finishes in its sandbox, not here
    assert sorted(str(p.relative_to(ws)) for p in ws.rglob("*")) == before
    assert (ws / "data" / "input.txt").read_text() == "hello\n"
    # A new host takes over; what the orphaned command wrote remotely is not lost: the
    # next command's sync back brings it, as after any interrupted run.
    assert exec_(ws, "--", "true").returncode == 0
    assert (ws / "late.txt").read_text() == "late\n"


def test_client_signal_reaches_the_remote(host_env: dict[str, str], ws: Path) -> None:
    proc = subprocess.Popen([PY, "-m", "modal_offload", "exec", "-c",
                             "trap 'echo got-int; exit 9' INT; echo started; sleep 20 & wait"],
                            cwd=ws, env=os.environ.copy(), stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert proc.stdout.read() == b"got-int\n"


def test_idle_host_exits(host_env: dict[str, str], ws: Path, tmp_home: Path) -> None:
    assert exec_(ws, "--", "true", env={"MODAL_OFFLOAD_HOST_IDLE_SECONDS": "1"}).returncode == 0
    (pid,) = host_pids(tmp_home) or [0]
    assert wait_for(lambda: not alive(pid), 10)
    assert not list((tmp_home / ".run" / "modal-offload").glob("*.sock"))


def test_budget_refusal_and_errors_are_one_line(host_env: dict[str, str], ws: Path,
                                                 tmp_path: Path) -> None:
    refused = exec_(ws, "--", "true", env={"PRIMARY_MODAL_MAX_MIN_PER_DAY": "0",
                                           "MODAL_OFFLOAD_WHEN_NO_BUDGET": "refuse"})
    assert refused.returncode == 125 and refused.stderr.count(b"\n") == 1
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    nowhere = cli("exec", "--", "true", cwd=outside)
    assert nowhere.returncode == 2 and b"not inside a workspace" in nowhere.stderr


def test_ledger_is_charged_through_the_host(host_env: dict[str, str], ws: Path,
                                            tmp_home: Path) -> None:
    assert exec_(ws, "-c", "sleep 1").returncode == 0
    data = ledger(tmp_home)
    assert data["used_min"] >= 1 / 60 * 0.9
    assert json.dumps(data["history"][data["day"]]["by_source"]) == json.dumps(
        {"exec": data["used_min"]})


def test_racing_clients_start_one_host(host_env: dict[str, str], ws: Path,
                                       tmp_home: Path) -> None:
    results: list[subprocess.CompletedProcess[bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(exec_(ws, "--", "true")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0] * 8
    assert all(r.stderr == b"" for r in results)
    assert len(host_pids(tmp_home)) == 1


def test_no_credentials_runs_locally_in_the_client(host_env: dict[str, str], ws: Path) -> None:
    probe = "import os; print(os.environ.get('MODAL_OFFLOAD_REMOTE'))"
    out = exec_(ws, "--", PY, "-c", probe, env={"MODAL_OFFLOAD_BACKEND": "modal"})
    assert out.returncode == 0 and out.stdout == b"None\n"
    assert b"running locally" in out.stderr and out.stderr.count(b"\n") == 1
    flagged = exec_(ws, "--backend", "modal", "--", "true", env={"MODAL_OFFLOAD_BACKEND": "modal"})
    assert flagged.returncode == 125 and flagged.stderr.count(b"\n") == 1


def _sandbox(tmp_home: Path) -> Path:
    (folder,) = (tmp_home / ".cache" / "modal-offload" / "sandboxes").glob("*/workspace")
    return folder


def _pid_in(folder: Path, name: str) -> int:
    assert wait_for(lambda: (folder / name).is_file() and (folder / name).read_text().strip()
                    != "", 15)
    return int((folder / name).read_text())


@pytest.mark.parametrize("how", ["host-client-killed", "in-process-hangup"])
def test_a_vanished_client_stops_everything_and_syncs_nothing(
        host_env: dict[str, str], ws: Path, tmp_home: Path, how: str) -> None:
    """Issue #13 class 8: a command that ignores SIGHUP, and a `nohup` child, are killed
    after a short grace; what they wrote is never applied to the laptop. Through the host
    the client is killed outright; in-process its terminal hangs up (SIGHUP)."""
    in_process = how == "in-process-hangup"
    proc = spawn_cli("exec", "-c",
                     "trap 'echo hup > hup.txt' HUP; nohup sh -c 'echo $$ > child.pid;"
                     " while :; do sleep 0.1; done' >/dev/null 2>&1 & echo $$ > leader.pid;"
                     " echo started; while :; do date > alive.txt; sleep 0.1; done",
                     cwd=ws, env={"MODAL_OFFLOAD_HOST": "0" if in_process else "1"})
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    sandbox = _sandbox(tmp_home)
    leader, child = _pid_in(sandbox, "leader.pid"), _pid_in(sandbox, "child.pid")
    if in_process:
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=30) == 128 + signal.SIGHUP
    else:
        proc.kill()  # the host sees the connection drop
        proc.wait()
    # The remote got the hang-up, then SIGKILL of its whole group: nothing runs on.
    assert wait_for(lambda: (sandbox / "hup.txt").exists(), 15)
    assert wait_for(lambda: not alive(leader) and not alive(child), 15)
    if not in_process:
        assert wait_for(lambda: "active commands: 0" in cli("host", "status").stdout.decode(),
                        15)
    # ... and the run synced nothing back: nobody is there to review it.
    for name in ("hup.txt", "alive.txt", "leader.pid", "child.pid"):
        assert not (ws / name).exists(), name


def test_session_stop_then_exec_never_reuses_the_stopped_session(
        host_env: dict[str, str], ws: Path, tmp_home: Path) -> None:
    """Issue #13 class 10: the host caches open sessions for a few seconds; `session stop`
    must end that too, and the next command runs in a new session."""
    assert exec_(ws, "-c", "echo one > one.txt").returncode == 0
    first = json.loads(cli("session", "status", "--json", cwd=ws).stdout)[0]["id"]
    stopped = cli("session", "stop", cwd=ws)
    assert stopped.returncode == 0 and b"stopped local session" in stopped.stdout
    again = exec_(ws, "-c", "cat one.txt; echo two > two.txt")
    assert (again.returncode, again.stdout, again.stderr) == (0, b"one\n", b"")
    assert (ws / "two.txt").read_text() == "two\n"
    second = json.loads(cli("session", "status", "--json", cwd=ws).stdout)[0]["id"]
    assert second != first
