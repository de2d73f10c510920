"""`modal-offload exec` outside any backend: credentials missing, bad usage."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli


def test_exec_without_credentials_runs_locally_and_says_so_once(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".modal-offload.toml").write_text("")
    first = cli("exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3", cwd=ws)
    assert first.returncode == 3 and first.stdout == b"out\n"
    assert first.stderr.startswith(b"modal-offload: running locally: no Modal credentials")
    second = cli("exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3", cwd=ws)
    assert (second.returncode, second.stdout, second.stderr) == (3, b"out\n", b"err\n")


def test_exec_usage_errors_are_one_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".modal-offload.toml").write_text("")
    for args in (["exec"], ["exec", "-c", "true", "--", "ls"]):
        out = cli(*args, cwd=ws)
        assert out.returncode == 2 and out.stderr.count(b"\n") == 1, args
    outside = cli("exec", "--", "true", cwd=tmp_path)
    assert outside.returncode == 2 and b"not inside a workspace" in outside.stderr


def test_session_status_and_stop_on_the_local_backend(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".modal-offload.toml").write_text("")
    env = {"MODAL_OFFLOAD_BACKEND": "local"}
    assert b"no live local session" in cli("session", "status", cwd=ws, env=env).stdout
    assert cli("exec", "--", "true", cwd=ws, env=env).returncode == 0
    status = cli("session", "status", cwd=ws, env=env)
    assert status.returncode == 0 and b"alive" in status.stdout
    assert cli("session", "stop", cwd=ws, env=env).stdout.startswith(b"stopped local session")
    assert b"no live local session" in cli("session", "status", cwd=ws, env=env).stdout
