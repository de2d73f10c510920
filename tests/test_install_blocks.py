"""Marked blocks and owned files: idempotent install, byte-exact uninstall."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modal_offload.install import blocks, owned


@settings(max_examples=60, deadline=None)
@given(original=st.one_of(st.none(), st.text(alphabet=st.characters(exclude_categories=["Cs"]),
                                             max_size=200)),
       body=st.text(alphabet="abc $=\n", max_size=40))
def test_install_twice_then_uninstall_is_byte_identical(
        tmp_path_factory: pytest.TempPathFactory, original: str | None, body: str) -> None:
    path = tmp_path_factory.mktemp("rc") / ".bashrc"
    if original is not None:
        path.write_bytes(original.encode())
    assert blocks.install(path, "routing", body or "x")
    assert not blocks.install(path, "routing", body or "x")  # twice = once
    assert blocks.check(path, "routing", body or "x") is blocks.Status.OK
    assert blocks.uninstall(path, "routing")
    if original is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == original.encode()


def test_other_tools_blocks_and_user_lines_survive(tmp_path: Path) -> None:
    path = tmp_path / ".zshrc"
    original = "# >>> conda initialize >>>\nconda stuff\n# <<< conda initialize <<<\nalias ll=ls"
    path.write_text(original)
    blocks.install(path, "routing", "export A=1")
    text = path.read_text()
    assert text.startswith(original) and "export A=1" in text
    path.write_text(text + "alias gs='git status'\n")  # the user keeps editing after us
    blocks.uninstall(path, "routing")
    assert path.read_text() == original + "\nalias gs='git status'\n"


def test_drift_is_reported_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "AGENTS.md"
    blocks.install(path, "policy", "run via runner", blocks.MARKDOWN)
    path.write_text(path.read_text().replace("run via runner", "whatever"))
    assert blocks.check(path, "policy", "run via runner", blocks.MARKDOWN) is blocks.Status.DRIFTED
    blocks.install(path, "policy", "run via runner", blocks.MARKDOWN)
    assert blocks.check(path, "policy", "run via runner", blocks.MARKDOWN) is blocks.Status.OK


def test_backup_is_taken_before_first_edit(tmp_home: Path) -> None:
    path = tmp_home / ".profile"
    path.write_text("PATH=$PATH:/opt\n")
    blocks.install(path, "routing", "x")
    backups = list((tmp_home / ".local" / "state" / "modal-offload" / "backups").glob("*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == "PATH=$PATH:/opt\n"


def test_owned_files_keep_a_foreign_file_as_legacy(tmp_path: Path) -> None:
    path = tmp_path / "modal-agent-runner"
    path.write_text("#!/bin/sh\necho user's own\n")
    text = f"#!/bin/sh\n# {owned.MARKER}\necho ours\n"
    assert owned.write(path, text, 0o755)
    assert owned.check(path, text) is blocks.Status.OK
    assert not owned.write(path, text, 0o755)
    assert owned.remove(path)
    assert path.read_text() == "#!/bin/sh\necho user's own\n"
    assert owned.check(path, text) is blocks.Status.FOREIGN
    assert not owned.remove(path)  # never removes what is not ours


@settings(max_examples=80, deadline=None)
@given(original=st.one_of(st.none(), st.text(alphabet="ab #>\n", max_size=40)),
       order=st.permutations(["routing", "completion", "third"]),
       removal=st.permutations(["routing", "completion", "third"]))
def test_several_blocks_removed_in_any_order_are_byte_identical(
        tmp_path_factory: pytest.TempPathFactory, original: str | None, order: list[str],
        removal: list[str]) -> None:
    # shell-bootstrap puts its routing and completion blocks in the same rc files: whichever
    # was added first (and so carries `created` / `nl`), any removal order restores the file.
    path = tmp_path_factory.mktemp("rc") / ".zshrc"
    if original is not None:
        path.write_bytes(original.encode())
    for name in order:
        assert blocks.install(path, name, f"echo {name}")
    for name in removal:
        assert blocks.uninstall(path, name)
    if original is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == original.encode()
