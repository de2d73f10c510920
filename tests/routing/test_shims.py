"""`modal-offload shims`: what gets a shim, ownership, refresh, and the shim's run-time rules."""

from __future__ import annotations

import os
from pathlib import Path

from modal_offload.install import owned
from tests.helpers import cli

from .conftest import install_shims, run, shell_env


def test_install_shims_routed_names_only(ws: Path, small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    shims = ws / ".modal-shims"
    assert (shims / "mo-probe").is_file() and os.access(shims / "mo-probe", os.X_OK)
    assert (shims / "ls").is_file()
    for local in ("git", "bash", "sh", "make", "sudo", "true", "modal-offload"):
        assert not (shims / local).exists(), local
    text = (shims / "mo-probe").read_text()
    assert text.startswith("#!/bin/sh\n") and owned.MARKER in text
    assert "python" not in text.split("exec -- ")[0].split("\n", 2)[2]  # no Python to decide
    listed = cli("shims", "list", cwd=ws, env=env).stdout.decode().split()
    assert "mo-probe" in listed and "git" not in listed


def test_refresh_adds_new_drops_vanished_keeps_foreign(ws: Path, small_path: str,
                                                       tool_bin: Path) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    shims = ws / ".modal-shims"
    foreign = shims / "my-own-thing"
    foreign.write_text("#!/bin/sh\necho mine\n")
    new = tool_bin / "mo-new"
    new.write_text("#!/bin/sh\n")
    new.chmod(0o755)
    (tool_bin / "mo-probe").unlink()
    assert cli("shims", "refresh", cwd=ws, env=env).returncode == 0
    assert (shims / "mo-new").is_file()
    assert not (shims / "mo-probe").exists()
    assert foreign.read_text() == "#!/bin/sh\necho mine\n"
    assert cli("shims", "uninstall", cwd=ws, env=env).returncode == 0
    assert sorted(p.name for p in shims.iterdir()) == ["my-own-thing"]


def test_refresh_before_install_says_what_to_do(ws: Path, small_path: str) -> None:
    out = cli("shims", "refresh", cwd=ws, env=shell_env(small_path))
    assert out.returncode == 2
    assert b"shims install" in out.stderr


def test_shim_routes_through_the_gateway(ws: Path, small_path: str) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    out = run([str(ws / ".modal-shims" / "mo-probe"), "a b", "", "c'd"], ws, env)
    assert out.returncode == 0, out.stderr
    assert "remote=1" in out.stdout
    assert out.stdout.rstrip("\n").endswith("args=a b  c'd")


def test_recursion_guard_inside_remote_and_pipeline(ws: Path, small_path: str,
                                                    tool_bin: Path) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    shims = str(ws / ".modal-shims")
    # The shims dir twice on PATH: the shim must still reach the real binary, not itself.
    doubled = os.pathsep.join([shims, shims + "/", small_path])
    for marker in ("MODAL_OFFLOAD_REMOTE", "MODAL_OFFLOAD_BYPASS"):
        out = run(["mo-probe", "x"], ws, shell_env(doubled, **{marker: "1"}), timeout=10)
        assert out.returncode == 0, out.stderr
        assert f"self={tool_bin}/mo-probe args=x" in out.stdout


def test_outside_the_workspace_runs_locally(ws: Path, small_path: str, tmp_path: Path,
                                            tool_bin: Path) -> None:
    env = shell_env(small_path)
    install_shims(ws, env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run([str(ws / ".modal-shims" / "mo-probe")], elsewhere, env, timeout=10)
    assert out.stdout.startswith("remote= bypass= self=" + str(tool_bin))


def test_shim_at_a_terminal_gets_a_remote_terminal(ws: Path, small_path: str, tool_bin: Path,
                                                   tmp_home: Path) -> None:
    """Issue 16: a routed command typed at a terminal runs under a remote one (through the
    session host, the users' default path), sized like the local window."""
    from tests.host.helpers import stop_hosts
    from tests.terminal import Terminal

    tool = tool_bin / "mo-tty"
    tool.write_text('#!/bin/sh\n[ -t 0 ] && [ -t 1 ] && stty size\n'
                    'read -r line; echo "remote=$MODAL_OFFLOAD_REMOTE got=$line"\n')
    tool.chmod(0o755)
    env = shell_env(small_path, MODAL_OFFLOAD_HOST="1")
    install_shims(ws, env)
    try:
        with Terminal([str(ws / ".modal-shims" / "mo-tty")], cwd=ws, env=env, rows=40,
                      cols=120) as term:
            term.expect(b"40 120\r\n", timeout=60)
            term.send(b"typed\r")
            term.expect(b"remote=1 got=typed\r\n")
            assert term.wait() == 0
            assert term.stty() == term.before
    finally:
        stop_hosts(tmp_home)
