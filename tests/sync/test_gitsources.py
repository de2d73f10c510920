"""Git's ignore sources outside the tree (gitsources.py), read without running git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from modal_offload.sync.gitsources import config_targets, config_value, outer_layers
from modal_offload.sync.ignore import IgnoreRules


def test_config_value_reads_git_config_syntax() -> None:
    text = ('[user]\n\tname = x\n[Core]\n\texcludesFile = "~/a b" ; comment\n'
            '[core "sub"]\n\texcludesfile = /wrong\n[core]\n  ExcludesFile=~/last # c\n')
    assert config_value(text, "core", "excludesfile") == "~/last"
    assert config_value("[core]\nexcludesfile = \"~/a b\" ; x\n", "core",
                        "excludesfile") == "~/a b"
    assert config_value("[user]\nexcludesfile = x\n", "core", "excludesfile") is None


def test_a_linked_worktree_reads_the_common_info_exclude(tmp_path: Path, tmp_home: Path) -> None:
    main = tmp_path / "main"
    subprocess.run(["git", "init", "-q", str(main)], check=True)
    subprocess.run(["git", "-C", str(main), "-c", "user.email=a@b", "-c", "user.name=a",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    (main / ".git" / "info" / "exclude").write_text("secret-notes.txt\n")
    wt = tmp_path / "wt"
    subprocess.run(["git", "-C", str(main), "worktree", "add", "-q", str(wt)], check=True)
    rules = IgnoreRules.load(wt, outer_layers(wt))
    assert rules.ignored("secret-notes.txt", False)
    assert rules.ignored("deep/secret-notes.txt", False)
    assert not rules.ignored("notes.txt", False)


def test_parent_gitignore_patterns_apply_relative_to_their_folder(tmp_path: Path) -> None:
    top = tmp_path / "repo"
    (top / ".git").mkdir(parents=True)
    (top / ".gitignore").write_text("/ws/build/\n/other/\n*.log\n")
    (top / "ws").mkdir()
    rules = IgnoreRules.load(top / "ws", outer_layers(top / "ws"))
    assert rules.ignored("build", True) and rules.ignored("x/y.log", False)
    assert not rules.ignored("other", True)
    # The tree's own files still win over the outer sources, as in git.
    (top / "ws" / ".gitignore").write_text("!keep.log\n")
    rules = IgnoreRules.load(top / "ws", outer_layers(top / "ws"))
    assert not rules.ignored("keep.log", False) and rules.ignored("drop.log", False)


def test_config_targets_inside_the_workspace_only(tmp_path: Path, tmp_home: Path) -> None:
    top = tmp_path / "repo"
    (top / ".git").mkdir(parents=True)
    (top / ".git" / "config").write_text(
        '[core]\n\thooksPath = .husky\n\tattributesFile = /etc/gitattributes\n'
        '[include]\n\tpath = ../a.cfg\n\tpath = ~/outside.cfg\n'
        '[includeIf "onbranch:main"]\n\tpath = ../sub/b.cfg\n')
    (tmp_home / ".gitconfig").write_text("[core]\n\texcludesFile = ~/ignore\n")
    assert sorted(config_targets(top)) == [".husky", "a.cfg", "sub/b.cfg"]
    assert sorted(config_targets(top / "sub")) == ["b.cfg"]
