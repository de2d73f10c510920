"""scripts/activate_modal_only.sh in real bash and zsh."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO

from .conftest import SHELLS, install_shims, run, shell_env

ACTIVATE = REPO / "scripts" / "activate_modal_only.sh"


@pytest.mark.parametrize("shell", SHELLS)
def test_activate_twice_then_deactivate_restores_path(shell: str, ws: Path,
                                                      small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    script = f"""
before=$PATH
. '{ACTIVATE}'
. '{ACTIVATE}'
echo "first=${{PATH%%:*}}"
n=0; rest=$PATH
while case $rest in *modal-shims*) true ;; *) false ;; esac; do
  rest=${{rest#*modal-shims}}; n=$((n+1))
done
echo "count=$n"
echo "active=$MODAL_SHIMS_ACTIVE"
echo "probe=$(command -v mo-probe)"
deactivate_modal_only
[ "$PATH" = "$before" ] && echo restored
echo "after=${{MODAL_SHIMS_ACTIVE-unset}} probe=$(command -v mo-probe)"
"""
    out = run([shell, "-c", script], ws, env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    shims = str(ws / ".modal-shims")
    assert f"first={shims}" in lines
    assert "count=1" in lines
    assert "active=1" in lines
    assert f"probe={shims}/mo-probe" in lines
    assert "restored" in lines
    assert any(line.startswith("after=unset probe=") and shims not in line for line in lines)


@pytest.mark.parametrize("shell", SHELLS)
def test_activate_without_shims_says_so(shell: str, ws: Path, small_path: str) -> None:
    out = run([shell, "-c", f". '{ACTIVATE}' || echo refused; echo ${{PATH%%:*}}"], ws,
              shell_env(small_path))
    assert "refused" in out.stdout
    assert "install_modal_shims.sh" in out.stderr


@pytest.mark.skipif(__import__("shutil").which("zsh") is None, reason="zsh not installed")
def test_zsh_wraps_absolute_paths_and_unwraps_on_deactivate(ws: Path, small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    script = f". '{ACTIVATE}'; whence -w /bin/ls; deactivate_modal_only; whence -w /bin/ls"
    out = run(["zsh", "-c", script], ws, env)
    assert out.stdout.splitlines() == ["/bin/ls: function", "/bin/ls: command"]


def test_install_script_is_a_thin_door(ws: Path, small_path: str) -> None:
    out = run(["sh", str(REPO / "scripts" / "install_modal_shims.sh")], ws,
              shell_env(small_path))
    assert out.returncode == 0, out.stderr
    assert (ws / ".modal-shims" / "mo-probe").is_file()
