"""Issue 13, class 2: shells activate only shim folders this user installed.

A cloned repository or unpacked archive can carry `.modal-shims/.modal-offload-shims`, its own
`ls` and a `.zsh-absolute.zsh`; none of it may run. Real bash and zsh, started the ways a user
starts them (shell bootstrap: login, interactive, `-c`; or sourcing activate_modal_only.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modal_offload import paths
from modal_offload.install import trust
from tests.helpers import REPO, cli, make_workspace

from .conftest import SHELLS, install_shims, needs_zsh, run, shell_env

ACTIVATE = REPO / "scripts" / "activate_modal_only.sh"
# Each way a shell can pick up shims: (argv prefix, needs shell-bootstrap installed).
STARTS = [
    pytest.param(["bash", "-lc"], True, id="bash-login"),
    pytest.param(["bash", "-i", "-c"], True, id="bash-interactive"),
    pytest.param(["zsh", "-c"], True, id="zsh", marks=needs_zsh),
    pytest.param(["bash", "-c", f". '{ACTIVATE}';"], False, id="bash-activate"),
    pytest.param(["zsh", "-c", f". '{ACTIVATE}';"], False, id="zsh-activate", marks=needs_zsh),
]


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@x", *args], cwd=cwd,
                   check=True, capture_output=True, timeout=30)


def _hostile_clone(tmp_path: Path, into: Path, evidence: Path, marker: str) -> Path:
    """A repository that commits a `.modal-shims` of its own (marker copied from a real
    install, an `ls`, a `.zsh-absolute.zsh`), cloned to `into` the way a user would."""
    upstream = tmp_path / "upstream"
    shims = upstream / ".modal-shims"
    shims.mkdir(parents=True)
    (shims / ".modal-offload-shims").write_text(marker)
    for name in ("ls", "mo-probe"):
        (shims / name).write_text(f"#!/bin/sh\necho {name} >> '{evidence}'\n")
        (shims / name).chmod(0o755)
    (shims / ".zsh-absolute.zsh").write_text(f"echo sourced >> '{evidence}'\n")
    (upstream / ".modal-offload.toml").write_text("")
    _git("init", "-q", ".", cwd=upstream)
    _git("add", "-A", "-f", cwd=upstream)
    _git("commit", "-qm", "looks harmless", cwd=upstream)
    _git("clone", "-q", str(upstream), str(into), cwd=tmp_path)
    return into


def _past_registry() -> None:
    """Return once a file changed now gets a ctime after the registry's mtime (timestamps
    are kernel-tick coarse): what the tests change next is then a change *after* install."""
    reg_mtime = paths.shims_registry().stat().st_mtime_ns
    probe = paths.state_dir() / "tick-probe"
    for _ in range(100_000):
        probe.write_text("x")
        if probe.stat().st_ctime_ns > reg_mtime:
            probe.unlink()
            return
    raise AssertionError("the clock does not move")


def _argv(start: list[str], bootstrap: bool, script: str) -> list[str]:
    """`start` runs `script`: appended as its own argument, or after the activation source."""
    return [*start, script] if bootstrap else [*start[:-1], f"{start[-1]} {script}"]


@pytest.mark.parametrize(("start", "bootstrap"), STARTS)
def test_a_cloned_repo_with_forged_shims_does_not_activate(
        start: list[str], bootstrap: bool, tmp_path: Path, ws: Path, small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)  # the user's own workspace, to copy a genuine marker from
    evidence = tmp_path / "evidence"
    clone = _hostile_clone(tmp_path, tmp_path / "clone", evidence,
                           (ws / ".modal-shims" / ".modal-offload-shims").read_text())
    if bootstrap:
        assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    out = run(_argv(start, bootstrap, "ls >/dev/null; mo-probe; command -v ls; echo done"),
              clone, env)
    assert not evidence.exists(), evidence.read_text()  # its ls ran, or its zsh file was sourced
    assert out.stdout.splitlines()[-1] == "done"
    assert ".modal-shims" not in out.stdout  # `ls` is the system's
    warned = [line for line in out.stderr.splitlines() if "ignoring shims in" in line]
    assert warned and f"{clone}/.modal-shims" in warned[0] and "not installed by you" in warned[0]
    # The user's own workspace still activates.
    out = run(_argv(start, bootstrap, "command -v mo-probe"), ws, env)
    assert out.stdout.splitlines()[-1] == f"{ws}/.modal-shims/mo-probe", out.stderr


@pytest.mark.parametrize(("start", "bootstrap"), STARTS)
@pytest.mark.parametrize("change", ["edit-shim", "edit-zsh-file", "add-file", "reclone"])
def test_installed_shims_changed_afterwards_are_refused(
        start: list[str], bootstrap: bool, change: str, tmp_path: Path, ws: Path,
        small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    if bootstrap:
        assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    before = run(_argv(start, bootstrap, "command -v mo-probe"), ws, env)
    assert before.stdout.splitlines()[-1] == f"{ws}/.modal-shims/mo-probe", before.stderr
    evidence = tmp_path / "evidence"
    _past_registry()
    shims = ws / ".modal-shims"
    if change == "edit-shim":
        with (shims / "mo-probe").open("a") as fh:
            fh.write(f"echo ran >> '{evidence}'\n")
    elif change == "edit-zsh-file":
        with (shims / ".zsh-absolute.zsh").open("a") as fh:
            fh.write(f"echo sourced >> '{evidence}'\n")
    elif change == "add-file":
        (shims / "ls").unlink()
        (shims / "ls").write_text(f"#!/bin/sh\necho ls >> '{evidence}'\n")
        (shims / "ls").chmod(0o755)
    else:  # the workspace deleted and another repository cloned at the same path
        marker = (shims / ".modal-offload-shims").read_text()
        shutil.rmtree(ws)
        _hostile_clone(tmp_path, ws, evidence, marker)
    out = run(_argv(start, bootstrap, "ls >/dev/null; mo-probe; command -v mo-probe"),
              ws, env)
    assert not evidence.exists(), evidence.read_text()
    assert ".modal-shims" not in out.stdout, out.stdout
    assert f"ignoring shims in {shims}: changed since" in out.stderr
    rows = {r["check"]: r for r in json.loads(
        cli("doctor", "--json", cwd=ws, env=env).stdout)["checks"]}
    assert rows["shim trust"]["status"] == "fail" and str(shims) in rows["shim trust"]["detail"]


@pytest.mark.parametrize("shell", SHELLS)
def test_reinstalling_trusts_again_and_uninstall_forgets(shell: str, ws: Path,
                                                         small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    _past_registry()
    os.chmod(ws / ".modal-shims" / "mo-probe", 0o755)  # a status change, content the same
    script = f". '{ACTIVATE}' 2>/dev/null; command -v mo-probe"
    assert ".modal-shims" not in run([shell, "-c", script], ws, env).stdout
    install_shims(ws, env)
    assert run([shell, "-c", script], ws, env).stdout.strip() == f"{ws}/.modal-shims/mo-probe"
    assert cli("shims", "uninstall", cwd=ws, env=env).returncode == 0
    assert str(ws / ".modal-shims") not in trust.read()


def test_install_refuses_to_trust_executables_it_did_not_write(tmp_path: Path,
                                                               small_path: str) -> None:
    env = shell_env(small_path)
    evidence = tmp_path / "evidence"
    clone = _hostile_clone(tmp_path, tmp_path / "clone", evidence, "forged\n")
    # `foo` looks ours, so install removes it as stale and would restore `foo.legacy`.
    (clone / ".modal-shims" / "foo").write_text("#!/bin/sh\n# modal-offload-owned: 6d0f3b1e\n")
    (clone / ".modal-shims" / "foo.legacy").write_text(f"#!/bin/sh\necho foo >> '{evidence}'\n")
    (clone / ".modal-shims" / "foo.legacy").chmod(0o755)
    out = cli("shims", "install", cwd=clone, env=env)
    assert out.returncode == 2
    err = out.stderr.decode()
    assert "not trusting" in err and "ls was not written by modal-offload" in err
    assert "foo was not written by modal-offload" in err
    assert (clone / ".modal-shims" / "ls").read_text().startswith("#!/bin/sh\necho ls")  # kept
    shell = run(["bash", "-c", f". '{ACTIVATE}'; ls >/dev/null; echo done"], clone, env)
    assert not evidence.exists() and shell.stdout.strip() == "done"
    assert str(clone / ".modal-shims") not in trust.read()


@pytest.mark.parametrize("shell", SHELLS)
def test_a_symlinked_shims_folder_is_neither_filled_nor_trusted(shell: str, tmp_path: Path,
                                                                 small_path: str) -> None:
    env = shell_env(small_path)
    elsewhere = tmp_path / "elsewhere"
    make_workspace(elsewhere)
    install_shims(elsewhere, env)
    ws = make_workspace(tmp_path / "ws")
    (ws / ".modal-shims").symlink_to(elsewhere / ".modal-shims")
    refused = cli("shims", "install", cwd=ws, env=env)
    assert refused.returncode == 2 and b"not a plain folder" in refused.stderr
    out = run([shell, "-c", f". '{ACTIVATE}'; command -v mo-probe"], ws, env)
    assert ".modal-shims" not in out.stdout
    assert "not a plain folder" in out.stderr


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("spoil", ["group-writable", "not-yours"])
def test_a_registry_others_can_write_is_not_believed(shell: str, spoil: str, ws: Path,
                                                     small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    reg = paths.shims_registry()
    if spoil == "group-writable":
        reg.chmod(0o620)
        why = "writable by others"
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root (CI runs as root)")
        os.chown(reg, 4242, -1)
        why = "is not yours"
    out = run([shell, "-c", f". '{ACTIVATE}'; command -v mo-probe"], ws, env)
    assert ".modal-shims" not in out.stdout
    assert why in out.stderr


SHELLS_FOR_MIRROR = ["sh", "bash", pytest.param("zsh", marks=needs_zsh)]


@pytest.mark.parametrize("shell", SHELLS_FOR_MIRROR)
@pytest.mark.parametrize("override", [
    {}, {"MODAL_OFFLOAD_STATE_DIR": "/srv/state dir"}, {"MODAL_OFFLOAD_STATE_DIR": "~/st"},
    {"XDG_STATE_HOME": "/x/state"}, {"XDG_STATE_HOME": "relative/ignored"},
    {"XDG_STATE_HOME": ""},
])
def test_the_shell_finds_the_registry_where_python_writes_it(
        shell: str, override: dict[str, str], tmp_home: Path) -> None:
    env = {**os.environ, **override}
    script = f'. "{trust.TEMPLATE}"; _mo_registry; printf %s "$_mo_reg"'
    out = subprocess.run([shell, "-c", script], env=env, capture_output=True, text=True,
                         timeout=10)
    python = subprocess.run(
        [sys.executable, "-c",
         "from modal_offload import paths; print(paths.shims_registry(), end='')"],
        env=env, capture_output=True, text=True, timeout=10)
    assert out.stdout == python.stdout, out.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_an_installed_workspace_reached_through_a_symlink_still_activates(
        shell: str, tmp_path: Path, ws: Path, small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    link = tmp_path / "link"
    link.symlink_to(ws)
    out = run([shell, "-c", f". '{ACTIVATE}'; command -v mo-probe"], link,
              {**env, "PWD": str(link)})  # the logical path a shell keeps after `cd link`
    assert out.stdout.strip() == f"{link}/.modal-shims/mo-probe", out.stderr


@pytest.mark.parametrize("marker", ["MODAL_OFFLOAD_BYPASS", "MODAL_OFFLOAD_REMOTE"])
def test_inside_our_pipeline_shells_neither_check_nor_report(
        marker: str, tmp_path: Path, ws: Path, small_path: str) -> None:
    env = shell_env(small_path)
    evidence = tmp_path / "evidence"
    clone = _hostile_clone(tmp_path, tmp_path / "clone", evidence, "forged\n")
    assert cli("shell-bootstrap", "install", cwd=ws, env=env).returncode == 0
    # A local fallback's `bash -c` keeps its stderr byte for byte: no line of ours in it.
    out = run(["bash", "-c", "ls >/dev/null; echo ok >&2"], clone,
              {**env, "BASH_ENV": str(paths.bash_env_script()), marker: "1"})
    assert out.stderr == "ok\n" and not evidence.exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_installing_elsewhere_later_does_not_bless_an_earlier_change(
        shell: str, tmp_path: Path, ws: Path, small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    _past_registry()
    evidence = tmp_path / "evidence"
    with (ws / ".modal-shims" / "mo-probe").open("a") as fh:
        fh.write(f"echo ran >> '{evidence}'\n")
    other = make_workspace(tmp_path / "other")
    out = cli("shims", "install", cwd=other, env=env)  # moves the registry's mtime forward
    assert out.returncode == 0 and b"no longer trusted" in out.stdout
    shell_out = run([shell, "-c", f". '{ACTIVATE}'; mo-probe; command -v mo-probe"], ws, env)
    assert not evidence.exists() and ".modal-shims" not in shell_out.stdout
    assert "not installed by you" in shell_out.stderr
    assert run([shell, "-c", f". '{ACTIVATE}'; command -v mo-probe"], other, env
               ).stdout.strip() == f"{other}/.modal-shims/mo-probe"


@pytest.mark.parametrize("shell", SHELLS)
def test_a_tree_renamed_into_a_trusted_path_is_refused(shell: str, tmp_path: Path, ws: Path,
                                                       small_path: str) -> None:
    # Unpacked (or prepared) before the last `shims install` anywhere, then moved to where a
    # trusted workspace was: renaming its top folder leaves every shim's ctime old.
    env = shell_env(small_path)
    install_shims(ws, env)
    evidence = tmp_path / "evidence"
    staged = tmp_path / "unpacked"
    shutil.copytree(ws, staged, symlinks=True)
    (staged / ".modal-shims" / "mo-probe").write_text(
        f"#!/bin/sh\n# {(ws / '.modal-shims' / 'mo-probe').read_text().splitlines()[1][2:]}\n"
        f"echo ran >> '{evidence}'\n")
    other = make_workspace(tmp_path / "other")
    assert cli("shims", "install", cwd=other, env=env).returncode == 0  # registry written now
    ws.rename(tmp_path / "old")
    staged.rename(ws)
    out = run([shell, "-c", f". '{ACTIVATE}'; mo-probe; command -v mo-probe"], ws, env)
    assert not evidence.exists() and ".modal-shims" not in out.stdout, out.stdout
    assert f"ignoring shims in {ws}/.modal-shims: changed since" in out.stderr, out.stderr
    assert trust.verdict(ws / ".modal-shims") is not None  # doctor agrees
