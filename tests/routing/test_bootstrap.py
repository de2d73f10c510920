"""`modal-offload shell-bootstrap`: rc blocks, real shells started in the workspace, and the
end-to-end path: a shimmed command runs remotely (local sandbox backend), git stays local.

What a user does once after `make shell-bootstrap`: open a new terminal. A login shell reads
~/.profile (or ~/.zprofile), whose block exports BASH_ENV, which `bash -c` then reads; these
tests start shells the same way (`bash -lc`, or with the env a login session gives).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from modal_offload import paths
from tests.helpers import cli

from .conftest import SHELLS, install_shims, needs_zsh, run, shell_env

CONDA = ("# >>> conda initialize >>>\n__conda_setup=x\n# <<< conda initialize <<<\n")
PY_PROBE = "python3 -c 'import os; print(os.environ.get(\"MODAL_OFFLOAD_REMOTE\"))'"


def _seed_rc(home: Path) -> dict[str, bytes]:
    (home / ".bashrc").write_bytes(b"export FOO=1\n" + CONDA.encode() + b"alias ll='ls -l'")
    (home / ".zshrc").write_bytes(CONDA.encode())
    (home / ".profile").write_bytes(b"# user profile\n")
    return {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}


def test_install_twice_is_once_and_uninstall_is_byte_identical(tmp_home: Path, ws: Path,
                                                               small_path: str) -> None:
    before = _seed_rc(tmp_home)
    env = shell_env(small_path)
    assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    first = {p.name: p.read_bytes() for p in paths.shell_rc_files()}
    assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    assert {p.name: p.read_bytes() for p in paths.shell_rc_files()} == first
    assert cli("shell-bootstrap", "check", cwd=ws).returncode == 0
    for rc in paths.shell_rc_files():
        assert rc.read_text().count(">>> modal-offload:shell-bootstrap") == 1
    assert CONDA in (tmp_home / ".bashrc").read_text()
    assert (ws / ".modal-shims" / ".modal-offload-shims").is_file()  # installed for us
    assert cli("shell-bootstrap", "uninstall", cwd=ws).returncode == 0
    after = {p.name: p.read_bytes() for p in tmp_home.iterdir() if p.is_file()}
    assert after == before  # created files gone, edited ones byte-identical
    assert cli("shell-bootstrap", "check", cwd=ws).returncode == 1


def test_bash_env_of_the_user_is_chained_not_clobbered(tmp_home: Path, ws: Path,
                                                       small_path: str) -> None:
    user_env = tmp_home / "my_bash_env"
    user_env.write_text("echo user-bash-env-ran\n")
    env = shell_env(small_path, BASH_ENV=str(user_env))
    install_shims(ws, env)
    assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    out = run(["bash", "-lc", 'echo "outer=$BASH_ENV"; bash -c "command -v mo-probe"'], ws, env)
    assert f"outer={paths.bash_env_script()}" in out.stdout
    assert "user-bash-env-ran" in out.stdout
    assert f"{ws}/.modal-shims/mo-probe" in out.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_interactive_shells_activate_only_in_the_workspace(shell: str, ws: Path,
                                                           small_path: str,
                                                           tmp_path: Path) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    out = run([shell, "-i", "-c", "command -v mo-probe; command -v git"], ws, env)
    lines = out.stdout.splitlines()
    assert lines[0] == f"{ws}/.modal-shims/mo-probe", out.stderr
    assert ".modal-shims" not in lines[1]
    outside = tmp_path / "outside"
    outside.mkdir()
    out = run([shell, "-i", "-c", "command -v mo-probe"], outside, env)
    assert ".modal-shims" not in out.stdout


@needs_zsh
def test_zsh_c_routes_absolute_paths_remotely(ws: Path, small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    printenv = next(p for p in ("/usr/bin/printenv", "/bin/printenv") if os.path.exists(p))
    out = run(["zsh", "-c", f"whence -w /bin/hostname; {printenv} MODAL_OFFLOAD_REMOTE"], ws,
              env)
    assert out.stdout.splitlines() == ["/bin/hostname: function", "1"], out.stderr


@pytest.mark.parametrize("argv", [["bash", "-lc"], ["bash", "-c"],
                                  pytest.param(["zsh", "-c"], marks=needs_zsh)])
def test_end_to_end_python_remote_git_local(argv: list[str], tmp_home: Path, ws: Path,
                                            small_path: str) -> None:
    assert shutil.which("git", path=small_path), "git is needed for this test"
    env = shell_env(small_path)
    install_shims(ws, env)
    assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    if argv == ["bash", "-c"]:
        # What a login session exports for every later `bash -c` (e.g. an agent's terminal).
        env["BASH_ENV"] = str(paths.bash_env_script())
    out = run([*argv, f"{PY_PROBE}; git --version; command -v git"], ws, env)
    lines = out.stdout.splitlines()
    assert lines[0] == "1", out.stderr  # ran in the (local sandbox) remote session
    assert lines[1].startswith("git version")
    assert ".modal-shims" not in lines[2]
