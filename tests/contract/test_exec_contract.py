"""Exec fidelity, sync and safety, end to end through `modal-offload exec`, per backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.contract.conftest import Target
from tests.helpers import REPO, cli, spawn_cli

PY = "python3"


def run(target: Target, *args: str, input: bytes | None = None, cwd: Path | None = None,
        env: dict[str, str] | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess[bytes]:
    full = dict(target.env)
    full.update(env or {})
    return cli("exec", *args, cwd=cwd or target.workspace, env=full, input=input,
               timeout=timeout)


WEIRD_ARGS = ["plain", "with space", "it's", 'say "hi"', "$HOME", "*.txt", "line1\nline2",
              "ünïcødé ✓", "", "--flag", "-c", "a\\b", "trailing\n", " "]


def test_argv_passes_unchanged(target: Target) -> None:
    out = run(target, "--", PY, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))",
              *WEIRD_ARGS)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == WEIRD_ARGS


def test_shell_string_runs_in_a_shell(target: Target) -> None:
    out = run(target, "-c", "echo $((6*7)) | tr 4 X; exit 7")
    assert out.returncode == 7 and out.stdout == b"X2\n"


def test_streams_are_separate_and_byte_exact(target: Target) -> None:
    code = ("import sys; sys.stdout.buffer.write(bytes(range(256))*3);"
            "sys.stderr.buffer.write(b'err-no-newline')")
    out = run(target, "--", PY, "-c", code)
    assert out.returncode == 0
    assert out.stdout == bytes(range(256)) * 3
    assert out.stderr == b"err-no-newline"


def test_stdin_is_streamed_from_pipe_and_eof_without_input(target: Target) -> None:
    data = os.urandom(300_000)
    out = run(target, "--", "cat", input=data)
    assert out.returncode == 0 and out.stdout == data
    # No stdin at all: the remote sees EOF at once and never hangs.
    proc = subprocess.run([sys.executable, "-m", "modal_offload", "exec", "--", "cat"],
                          cwd=target.workspace, env={**os.environ, **target.env},
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == b""


def test_stdin_from_a_file(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"from a file\x00\xff")
    with src.open("rb") as fh:
        proc = subprocess.run([sys.executable, "-m", "modal_offload", "exec", "--", "wc", "-c"],
                              cwd=target.workspace, env={**os.environ, **target.env},
                              stdin=fh, capture_output=True, timeout=60)
    assert proc.stdout.strip() == b"13"


@pytest.mark.parametrize(("script", "expected"), [
    ("exit 0", 0), ("exit 3", 3), ("exit 255", 255), ("kill -9 $$", 137), ("kill -15 $$", 143),
])
def test_exit_code_is_the_remote_one(target: Target, script: str, expected: int) -> None:
    assert run(target, "-c", script).returncode == expected


def test_command_not_found_is_127(target: Target) -> None:
    out = run(target, "--", "definitely-not-a-command-xyz")
    assert out.returncode == 127


def test_output_is_streamed_live(target: Target) -> None:
    """The first line arrives while the remote command is still running: it then waits for
    a line of input that is only sent once that first line was read here (no sleep, no
    timing: a buffered stream would hang until the timeout instead)."""
    proc = _spawn_with_stdin(
        target, "--", PY, "-u", "-c",
        "import sys; print('first', flush=True); sys.stdin.readline(); print('second')")
    assert proc.stdout is not None
    first = proc.stdout.readline()
    rest, _ = proc.communicate(b"go\n", timeout=60)
    assert proc.returncode == 0
    assert first == b"first\n" and rest == b"second\n"


def _spawn_with_stdin(target: Target, *args: str,
                      stderr: int | None = None) -> subprocess.Popen[bytes]:
    """The CLI in the background with a pipe for stdin (spawn_cli gives it none)."""
    return subprocess.Popen([sys.executable, "-m", "modal_offload", "exec", *args],
                            cwd=target.workspace, env={**os.environ, **target.env},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_client_signal_stops_the_remote_process_group(target: Target, tmp_path: Path,
                                                      sig: int, code: int) -> None:
    token = f"sleeper-{os.getpid()}-{sig}-{time.time_ns()}"
    proc = spawn_cli("exec", "-c", f"echo started; sh -c 'sleep 60; echo {token}' & wait",
                     cwd=target.workspace, env=target.env, stderr=None)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == code
    time.sleep(0.5)
    leftover = subprocess.run(["pgrep", "-f", f"sleep 60; echo {token}"], capture_output=True)
    assert leftover.stdout == b"", "the remote process group survived the client's signal"


def test_cwd_relative_to_workspace_is_kept(target: Target) -> None:
    sub = target.workspace / "data"
    out = run(target, "--", PY, "-c", "import os; print(os.listdir('.'))", cwd=sub)
    assert out.returncode == 0 and "input.txt" in out.stdout.decode()
    pwd = run(target, "--", "pwd", cwd=sub)
    assert pwd.stdout.decode().rstrip().endswith("/data")


def test_remote_sees_markers_and_no_secrets(target: Target) -> None:
    show = ("import os, json; print(json.dumps({k: os.environ.get(k) for k in "
            "['MODAL_OFFLOAD_REMOTE', 'IN_MODAL_TASK_RUNNER', 'GITHUB_TOKEN', 'MY_API_KEY', "
            "'AWS_REGION', 'LANG', 'MY_SETTING']}))")
    env = {"GITHUB_TOKEN": "ghp_secret", "MY_API_KEY": "k", "AWS_REGION": "eu",
           "LANG": "C.UTF-8", "MY_SETTING": "x"}
    seen = json.loads(run(target, "--", PY, "-c", show, env=env).stdout)
    assert seen == {"MODAL_OFFLOAD_REMOTE": "1", "IN_MODAL_TASK_RUNNER": "1",
                    "GITHUB_TOKEN": None, "MY_API_KEY": None, "AWS_REGION": None,
                    "LANG": "C.UTF-8", "MY_SETTING": None}
    allowed = json.loads(run(target, "--", PY, "-c", show, env={
        **env, "MODAL_OFFLOAD_FORWARD_ENV": "GITHUB_TOKEN MY_*"}).stdout)
    assert allowed["GITHUB_TOKEN"] == "ghp_secret" and allowed["MY_SETTING"] == "x"
    assert allowed["MY_API_KEY"] is None  # a glob never lets a secret-looking name through


def test_files_go_up_and_changes_come_back(target: Target) -> None:
    ws = target.workspace
    out = run(target, "-c", "cat data/input.txt; echo made > data/out.txt; rm data/input.txt;"
                            " mkdir -p gen && printf x > gen/a.bin && chmod +x gen/a.bin")
    assert out.returncode == 0 and out.stdout == b"hello\n", out.stderr
    assert (ws / "data" / "out.txt").read_text() == "made\n"
    assert not (ws / "data" / "input.txt").exists()
    assert os.access(ws / "gen" / "a.bin", os.X_OK)


def test_no_sync_back_leaves_the_local_tree_untouched(target: Target) -> None:
    before = sorted(p.name for p in target.workspace.rglob("*"))
    out = run(target, "--no-sync-back", "-c", "echo x > new.txt; rm data/input.txt")
    assert out.returncode == 0
    assert sorted(p.name for p in target.workspace.rglob("*")) == before
    assert (target.workspace / "data" / "input.txt").read_text() == "hello\n"


def test_local_edit_during_the_run_is_kept_as_a_conflict(target: Target) -> None:
    ws = target.workspace
    # The remote writes only after the local edit is made (it waits for a line of input).
    proc = _spawn_with_stdin(target, "-c", "echo started; read go; echo remote > data/input.txt",
                             stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    (ws / "data" / "input.txt").write_text("local edit\n")
    _, err = proc.communicate(b"go\n", timeout=60)
    assert proc.returncode == 0
    assert (ws / "data" / "input.txt").read_text() == "local edit\n"
    saved = [p for p in (ws / "data").iterdir() if p.name != "input.txt"]
    assert len(saved) == 1 and saved[0].read_text() == "remote\n"
    assert b"conflict" in err


def test_exec_charges_the_ledger(target: Target, tmp_home: Path) -> None:
    assert run(target, "-c", "sleep 1").returncode == 0
    data = json.loads((tmp_home / ".primary_compute_modal_usage.json").read_text())
    assert data["used_min"] >= 1 / 60 * 0.9
    assert data["history"][data["day"]]["by_source"]["exec"] == data["used_min"]


def test_no_budget_runs_locally_with_notice_or_refuses(target: Target) -> None:
    probe = ("import os; print(os.environ.get('MODAL_OFFLOAD_REMOTE'))")
    out = run(target, "--", PY, "-c", probe, env={"PRIMARY_MODAL_MAX_MIN_PER_DAY": "0"})
    assert out.returncode == 0 and out.stdout == b"None\n"
    assert b"running locally" in out.stderr and out.stderr.count(b"\n") == 1
    again = run(target, "--", PY, "-c", probe, env={"PRIMARY_MODAL_MAX_MIN_PER_DAY": "0"})
    assert again.stdout == b"None\n" and again.stderr == b""  # said once, not every command
    refused = run(target, "--", PY, "-c", probe, env={"PRIMARY_MODAL_MAX_MIN_PER_DAY": "0",
                                                      "MODAL_OFFLOAD_WHEN_NO_BUDGET": "refuse"})
    assert refused.returncode == 125 and refused.stdout == b""


def test_modal_exec_sh_is_a_door_into_exec(target: Target) -> None:
    script = str(REPO / "scripts" / "modal_exec.sh")
    env = {**os.environ, **target.env}
    out = subprocess.run([script, "--no-sync-back", "--", PY, "-c",
                          "import sys; print(sys.argv[1:])", "a b", ""],
                         cwd=target.workspace, env=env, capture_output=True, timeout=60)
    assert out.returncode == 0 and out.stdout == b"['a b', '']\n", out.stderr
    shell = subprocess.run([script, "-c", "echo hi > from_script.txt; exit 4"],
                           cwd=target.workspace, env=env, capture_output=True, timeout=60)
    assert shell.returncode == 4
    assert (target.workspace / "from_script.txt").read_text() == "hi\n"
    helptext = subprocess.run([script, "-h"], capture_output=True, env=env)
    assert helptext.returncode == 0 and b"--no-sync-back" in helptext.stdout


def test_large_output_streams_with_bounded_memory(target: Target, tmp_path: Path) -> None:
    size = 1 << 30 if target.name == "local" else 64 << 20
    driver = tmp_path / "drive.py"
    driver.write_text(
        "import resource, subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-m', 'modal_offload', 'exec', '--no-sync-back',"
        f" '--', 'head', '-c', '{size}', '/dev/zero'], stdout=subprocess.PIPE)\n"
        "n = 0\n"
        "while chunk := p.stdout.read(1 << 20):\n"
        "    n += len(chunk)\n"
        "code = p.wait()\n"
        "rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(n, code, rss_kb)\n")
    out = subprocess.run([sys.executable, str(driver)], cwd=target.workspace,
                         env={**os.environ, **target.env}, capture_output=True, timeout=240)
    n, code, rss_kb = (int(x) for x in out.stdout.split())
    assert (n, code) == (size, 0), out.stderr
    assert rss_kb < 200 * 1024, f"client peak RSS {rss_kb / 1024:.0f} MB for {size >> 20} MB"
