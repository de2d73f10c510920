"""The runner: installed by `agents install`, exact through the gateway, fails with 125."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from modal_offload.install import runner as runner_mod
from tests.helpers import cli, local_backend_env


def _run(runner: Path, *args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[
        bytes]:
    env = {**os.environ, **local_backend_env()}
    return subprocess.run([str(runner), *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=120)


def test_runner_argv_stdin_and_exit_code(ws: Path, tmp_home: Path) -> None:
    assert cli("agents", "install", "--only", "runner", cwd=ws).returncode == 0
    runner = tmp_home / ".local" / "bin" / "modal-agent-runner"
    done = _run(runner, "--", "python3", "-c",
                "import sys; print(sys.argv[1:]); print(sys.stdin.read()); sys.exit(4)",
                "a b", "", "ünï", cwd=ws, stdin=b"from stdin")
    assert done.stdout == b"['a b', '', '\xc3\xbcn\xc3\xaf']\nfrom stdin\n"
    assert done.returncode == 4
    remote = _run(runner, "-c", 'echo "$MODAL_OFFLOAD_REMOTE"', cwd=ws)
    assert remote.stdout == b"1\n"  # it really ran in the (local stand-in) remote session


def test_runner_usage_errors_are_125(ws: Path, tmp_home: Path) -> None:
    assert cli("agents", "install", "--only", "runner", cwd=ws).returncode == 0
    runner = tmp_home / ".local" / "bin" / "modal-agent-runner"
    for args in ([], ["ls"], ["-c"], ["-c", "a", "b"], ["--"]):
        done = _run(runner, *args, cwd=ws)
        assert done.returncode == 125 and b"usage" in done.stderr, args


def test_runner_falls_back_to_the_interpreter(ws: Path, tmp_home: Path) -> None:
    path = tmp_home / "runner"
    path.write_text(runner_mod.script(cli=tmp_home / "gone" / "modal-offload"))
    path.chmod(0o755)
    assert _run(path, "-c", "echo via-python", cwd=ws).stdout == b"via-python\n"
    path.write_text(runner_mod.script(cli=tmp_home / "gone", python=str(tmp_home / "nopy")))
    done = _run(path, "-c", "echo x", cwd=ws)
    assert done.returncode == 125 and b"agents install" in done.stderr


def test_live_check(ws: Path) -> None:
    assert cli("agents", "install", "--only", "runner", cwd=ws).returncode == 0
    done = cli("agents", "check", "--only", "runner", "--live", cwd=ws, env=local_backend_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert b"ok        runner live" in done.stdout
    assert cli("agents", "uninstall", "--only", "runner", cwd=ws).returncode == 0
    missing = cli("agents", "check", "--only", "runner", "--live", cwd=ws)
    assert missing.returncode != 0 and b"missing   runner" in missing.stdout


def test_live_check_runs_a_probe_through_every_installed_hook(ws: Path, tmp_home: Path) -> None:
    assert cli("agents", "install", cwd=ws).returncode == 0
    done = cli("agents", "check", "--only", "hooks", "--live", cwd=ws, env=local_backend_env())
    out = done.stdout.decode()
    for agent in ("claude", "gemini", "codex", "cursor", "cline"):
        assert f"ok        {agent} hook live  (hook routed the probe" in out, out
    assert "unverified without a model" in out
    # A hook that no longer routes is reported, with the reason.
    (tmp_home / ".local" / "bin" / "modal-agent-runner").unlink()
    broken = cli("agents", "check", "--only", "hooks", "--live", cwd=ws, env=local_backend_env())
    assert broken.returncode != 0 and b"drifted   claude hook live" in broken.stdout


def test_runner_never_gets_a_terminal(ws: Path, tmp_home: Path) -> None:
    """An agent that runs us inside a terminal still gets plain, separate streams."""
    from tests.terminal import Terminal

    assert cli("agents", "install", "--only", "runner", cwd=ws).returncode == 0
    runner = tmp_home / ".local" / "bin" / "modal-agent-runner"
    env = {**os.environ, **local_backend_env()}
    with Terminal([str(runner), "-c", "[ -t 0 ] || [ -t 1 ] || echo no-tty"], cwd=ws,
                  env=env) as term:
        term.expect(b"no-tty\r\n")  # CRLF from the local terminal only
        assert term.wait() == 0
        assert term.stty() == term.before


def test_runner_fallback_never_imports_workspace_modules(ws: Path, tmp_home: Path) -> None:
    from tests.agents.test_hooks_e2e import plant_shadows

    canary = plant_shadows(ws)
    path = tmp_home / "runner"
    path.write_text(runner_mod.script(cli=tmp_home / "gone" / "modal-offload"))
    path.chmod(0o755)
    assert _run(path, "-c", "echo via-python", cwd=ws).stdout == b"via-python\n"
    assert not canary.exists(), canary.read_text()
