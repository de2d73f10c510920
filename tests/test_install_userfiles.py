"""Issue 13, class 10: installers edit a user's files without changing what they are.

Symlinked rc and settings files stay symlinks (the target is edited), read-only files are
refused with one line and nothing half-written, a block that merely looks like ours is never
touched, and uninstall stays byte-exact.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modal_offload import paths
from modal_offload.errors import BadInput
from modal_offload.install import blocks, jsonfile
from tests.helpers import cli, make_workspace

SETTINGS = '{\n  // mine\n  "theme": "dark",\n}\n'


def _spec(path: Path) -> jsonfile.JsonSpec:
    return jsonfile.JsonSpec(path, values={("hooks", "x"): "modal-offload-hook"})


def _snapshot(home: Path) -> dict[str, tuple[str, bytes]]:
    """Every file under home: ('link', target) for symlinks, ('file', bytes) otherwise."""
    out = {}
    for path in sorted(home.rglob("*")):
        rel = str(path.relative_to(home))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path).encode())
        elif path.is_file():
            out[rel] = ("file", path.read_bytes())
    return out


def test_symlinked_rc_files_stay_symlinks(tmp_home: Path, tmp_path: Path) -> None:
    dotfiles = tmp_home / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "zshrc").write_text("export EDITOR=vi\n")
    (dotfiles / "bashrc").write_text("alias ll='ls -l'")  # no final newline
    (tmp_home / ".zshrc").symlink_to(dotfiles / "zshrc")
    (tmp_home / ".bashrc").symlink_to("dotfiles/bashrc")  # relative, as stow makes them
    before = _snapshot(tmp_home)
    ws = make_workspace(tmp_path / "ws")
    out = cli("shell-bootstrap", "install", cwd=ws)
    assert out.returncode == 0, out.stderr
    for link, target in ((".zshrc", "zshrc"), (".bashrc", "bashrc")):
        assert (tmp_home / link).is_symlink()
        assert ">>> modal-offload:shell-bootstrap" in (dotfiles / target).read_text()
    assert cli("shell-bootstrap", "check", cwd=ws).returncode == 0
    assert cli("shell-bootstrap", "uninstall", cwd=ws).returncode == 0
    after = {k: v for k, v in _snapshot(tmp_home).items() if not k.startswith(".local")}
    assert after == before


def test_symlinked_settings_file_stays_a_symlink(tmp_home: Path) -> None:
    real = tmp_home / "dotfiles" / "claude-settings.json"
    real.parent.mkdir()
    real.write_text(SETTINGS)
    link = tmp_home / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)
    assert jsonfile.install(_spec(link))
    assert link.is_symlink() and "modal-offload-hook" in real.read_text()
    assert jsonfile.uninstall(_spec(link))
    assert link.is_symlink() and real.read_text() == SETTINGS


def test_a_dangling_symlink_is_refused(tmp_home: Path, tmp_path: Path) -> None:
    (tmp_home / ".zshrc").symlink_to(tmp_home / "dotfiles" / "gone")
    out = cli("shell-bootstrap", "install", cwd=make_workspace(tmp_path / "ws"))
    assert out.returncode == 2
    assert b"does not exist" in out.stderr and b"Traceback" not in out.stderr
    assert (tmp_home / ".zshrc").is_symlink() and not (tmp_home / "dotfiles").exists()


@pytest.mark.parametrize("how", ["file", "symlink-target"])
def test_a_read_only_rc_file_is_refused_and_nothing_is_half_written(
        how: str, tmp_home: Path, tmp_path: Path) -> None:
    (tmp_home / ".profile").write_text("# mine\n")
    frozen = tmp_home / ".zshrc"
    if how == "file":
        frozen.write_text("# frozen on purpose\n")
        frozen.chmod(0o444)
    else:
        target = tmp_home / "dotfiles-zshrc"
        target.write_text("# frozen on purpose\n")
        target.chmod(0o444)
        frozen.symlink_to(target)
    before = _snapshot(tmp_home)
    ws = make_workspace(tmp_path / "ws")
    out = cli("shell-bootstrap", "install", cwd=ws)
    assert out.returncode == 2
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and ".zshrc" in lines[0]
    assert _snapshot(tmp_home) == before  # no rc file and none of our support files written
    assert not paths.shell_route_script().exists()


def test_a_read_only_rc_file_blocks_uninstall_before_anything_changes(
        tmp_home: Path, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    assert cli("shell-bootstrap", "install", cwd=ws).returncode == 0
    (tmp_home / ".bashrc").chmod(0o444)
    before = _snapshot(tmp_home)
    out = cli("shell-bootstrap", "uninstall", cwd=ws)
    assert out.returncode == 2 and b"read-only" in out.stderr
    assert _snapshot(tmp_home) == before


def test_a_read_only_settings_file_is_refused_without_a_trace(tmp_home: Path) -> None:
    path = tmp_home / "settings.json"
    path.write_text(SETTINGS)
    path.chmod(0o444)
    with pytest.raises(BadInput, match="read-only"):
        jsonfile.install(_spec(path))
    assert path.read_text() == SETTINGS
    assert not (paths.backups_dir() / "edits").exists()  # no record of an edit never made


_begin_alikes = st.sampled_from([
    # an older or hand-written begin line: our shape, but no marker and sum
    "# >>> modal-offload:routing >>> managed by modal-offload; edit outside this block\n",
    "# >>> modal-offload:routing created >>>\n",
    # the marker of someone else's copy of the tool
    "# >>> modal-offload:routing >>> managed by modal-offload; edit outside this block "
    "(modal-offload-owned: deadbeef 0123456789ab)\n",
])
_lines = st.text(alphabet="abc =$#\n", max_size=30)


@settings(max_examples=80, deadline=None)
@given(head=_lines, begin=_begin_alikes, inner=_lines, tail=_lines)
def test_a_block_that_only_looks_like_ours_is_never_touched(
        tmp_path_factory: pytest.TempPathFactory, head: str, begin: str, inner: str,
        tail: str) -> None:
    path = tmp_path_factory.mktemp("rc") / ".bashrc"
    inner = inner if inner.endswith("\n") or not inner else inner + "\n"
    original = f"{head}\n{begin}{inner}# <<< modal-offload:routing <<<\n{tail}"
    path.write_bytes(original.encode())
    assert not blocks.uninstall(path, "routing")  # nothing of ours here
    assert blocks.check(path, "routing", "x") is blocks.Status.MISSING
    assert blocks.install(path, "routing", "export ROUTED=1")
    assert path.read_text().startswith(original)  # theirs kept whole, ours added after
    assert blocks.check(path, "routing", "export ROUTED=1") is blocks.Status.OK
    assert blocks.uninstall(path, "routing")
    assert path.read_bytes() == original.encode()


def test_a_block_with_our_marker_but_not_our_content_is_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / ".bashrc"
    original = ("# >>> modal-offload:routing >>> managed by modal-offload; edit outside this "
                "block (modal-offload-owned: 6d0f3b1e 000000000000)\nrm -rf ~/work\n"
                "# <<< modal-offload:routing <<<\n")
    path.write_text(original)
    assert blocks.check(path, "routing", "x") is blocks.Status.DRIFTED
    with pytest.raises(BadInput, match="edited since we wrote it"):
        blocks.uninstall(path, "routing")
    assert path.read_text() == original


def test_our_block_edited_since_is_not_deleted(tmp_home: Path) -> None:
    path = tmp_home / ".profile"
    path.write_text("# mine\n")
    blocks.install(path, "routing", "export A=1")
    edited = path.read_text().replace("export A=1", "export A=1\nexport MY_OWN=2")
    path.write_text(edited)
    assert blocks.check(path, "routing", "export A=1") is blocks.Status.DRIFTED
    with pytest.raises(BadInput, match="edited since we wrote it"):
        blocks.uninstall(path, "routing")
    assert path.read_text() == edited
