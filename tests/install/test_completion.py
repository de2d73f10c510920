"""Tab completion, set up by the real `shell-bootstrap install`, in real bash and zsh.

bash: an interactive `bash -i` reads ~/.bashrc, and the function it registered with
`complete -F` is called as readline would (COMP_WORDS/COMP_CWORD set). zsh: a real
interactive zsh in a pseudo-terminal (zpty), Tab pressed, every candidate recorded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers import cli

HERE = Path(__file__).resolve().parent
SUBCOMMANDS = {"usage", "heavy", "exec", "session", "route", "shims", "shell-bootstrap",
               "agents", "host", "env", "doctor", "completion"}


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    folder = tmp_path / "cwd"  # not a workspace: no shims get installed
    (folder / "payloads").mkdir(parents=True)
    (folder / "payload.json").write_text("{}")
    (folder / "notes.txt").write_text("")
    return folder


def _env() -> dict[str, str]:
    # Our console script first on PATH, as after any install; a terminal for zsh's line editor.
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bindir, "/usr/bin", "/bin"]),
            "TERM": "xterm"}


def _bootstrap(action: str, cwd: Path) -> None:
    done = cli("shell-bootstrap", action, cwd=cwd)
    assert done.returncode == 0, done.stderr


def bash_candidates(lines: Sequence[str], cwd: Path) -> dict[str, list[str]]:
    script = f"source {HERE / 'complete.bash'}\n" + "".join(
        f"echo '=== {line}'; _mo_complete '{line}'\n" for line in lines)
    done = subprocess.run(["bash", "-i", "-c", script], cwd=cwd, env=_env(), text=True,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return _parse(done.stdout)


def zsh_candidates(lines: Sequence[str], cwd: Path, tmp_path: Path) -> dict[str, list[str]]:
    capture = tmp_path / "zsh-candidates.txt"
    done = subprocess.run(["zsh", "-f", str(HERE / "complete.zsh"), str(capture), *lines],
                          cwd=cwd, env=_env(), text=True, capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return _parse(capture.read_text())


def _parse(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("=== "):
            current = out.setdefault(line[4:], [])
        elif line:
            current.append(line)
    return out


CASES = ["modal-offload ", "modal-offload heavy --mode ", "modal-offload exec --backend ",
         "modal-offload heavy --payload-file pay", "modal-offload heavy --",
         "modal-offload shims ", "modal-offload agents install --only "]


def _assert_offers(got: dict[str, list[str]]) -> None:
    assert set(got["modal-offload "]) == SUBCOMMANDS
    assert set(got["modal-offload heavy --mode "]) == {"auto", "modal", "local"}
    assert set(got["modal-offload exec --backend "]) == {"modal", "local"}
    assert set(got["modal-offload heavy --payload-file pay"]) == {"payload.json", "payloads"}
    assert {"--payload", "--payload-file", "--mode", "--no-local-fallback"} <= \
        set(got["modal-offload heavy --"])
    assert set(got["modal-offload shims "]) == {"install", "refresh", "uninstall", "list"}
    assert set(got["modal-offload agents install --only "]) == {"runner", "policy", "hooks"}


def test_bash_completes_commands_options_values_and_paths(cwd: Path) -> None:
    _bootstrap("install", cwd)
    _assert_offers(bash_candidates(CASES, cwd))
    # Only interactive shells load it: `bash -c` stays as fast as before.
    plain = subprocess.run(["bash", "-c", "complete -p modal-offload"], cwd=cwd, env=_env(),
                           capture_output=True, stdin=subprocess.DEVNULL)
    assert plain.returncode != 0


@pytest.mark.parametrize("compinit", ["before", "after"])
def test_zsh_completes_commands_options_values_and_paths(
        cwd: Path, tmp_home: Path, tmp_path: Path, compinit: str) -> None:
    # compinit before our block (the usual .zshrc), or after it (a user line added later):
    # registered at once in the first case, found on $fpath in the second.
    init = "autoload -Uz compinit\ncompinit\n"
    zshrc = tmp_home / ".zshrc"
    if compinit == "before":
        zshrc.write_text(init)
    _bootstrap("install", cwd)
    if compinit == "after":
        zshrc.write_text(zshrc.read_text() + init)
    _assert_offers(zsh_candidates(CASES, cwd, tmp_path))


def test_uninstall_removes_completion_and_restores_rc_files(cwd: Path, tmp_home: Path) -> None:
    (tmp_home / ".bashrc").write_text("alias ll='ls -l'")  # no final newline
    (tmp_home / ".zshrc").write_text("autoload -Uz compinit\ncompinit\n")
    before = {p.name: p.read_bytes() for p in tmp_home.iterdir() if p.is_file()}
    _bootstrap("install", cwd)
    assert b"modal-offload:completion" in (tmp_home / ".bashrc").read_bytes()
    checked = cli("shell-bootstrap", "check", cwd=cwd)
    assert checked.returncode == 0 and b"_modal-offload" in checked.stdout
    _bootstrap("uninstall", cwd)
    after = {p.name: p.read_bytes() for p in tmp_home.iterdir() if p.is_file()}
    assert after == before
    assert not (tmp_home / ".config" / "modal-offload" / "shell").exists()
    assert bash_candidates(["modal-offload heavy --mode "], cwd) == {
        "modal-offload heavy --mode ": []}


def test_completion_command_prints_the_same_script(cwd: Path, tmp_home: Path) -> None:
    _bootstrap("install", cwd)
    printed = cli("completion", "zsh", cwd=cwd)
    installed = next((tmp_home / ".config").rglob("_modal-offload")).read_bytes()
    assert printed.returncode == 0 and printed.stdout == installed
    assert installed.startswith(b"#compdef modal-offload\n")  # compinit reads line 1 only
