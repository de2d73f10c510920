"""Ignore rules: git semantics (nested files, negation, dir-only), our file, defaults."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from modal_offload.sync import manifest as manifest_mod
from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.manifest import scan
from tests.sync.conftest import write_tree

DEFAULTS = [".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache",
            ".mypy_cache", ".ruff_cache", ".tox", ".cache", ".modal-shims"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "tree"
    path.mkdir()
    return path


def scanned(root: Path) -> set[str]:
    return set(scan(root, IgnoreRules.load(root)).entries)


@pytest.mark.parametrize("name", DEFAULTS)
def test_default_folders_are_ignored_at_any_depth(root: Path, name: str) -> None:
    write_tree(root, {f"{name}/x.txt": "x", f"pkg/{name}/y.txt": "y", "pkg/keep.txt": "k"})
    assert scanned(root) == {"pkg", "pkg/keep.txt"}


def test_pyc_files_are_ignored(root: Path) -> None:
    write_tree(root, {"a.pyc": "", "pkg/b.pyc": "", "pkg/b.py": ""})
    assert scanned(root) == {"pkg", "pkg/b.py"}


def test_gitignore_patterns_are_relative_to_their_folder(root: Path) -> None:
    write_tree(root, {
        ".gitignore": "*.log\n",
        "sub/.gitignore": "/build\ndata.csv\n",
        "build/out.o": "", "sub/build/out.o": "", "sub/deeper/build/out.o": "",
        "data.csv": "", "sub/data.csv": "", "sub/deeper/data.csv": "",
        "x.log": "", "sub/y.log": "",
    })
    got = scanned(root)
    assert "build/out.o" in got  # /build anchors to sub/
    assert "sub/build" not in got and "sub/build/out.o" not in got
    assert "sub/deeper/build/out.o" in got
    assert "data.csv" in got and "sub/data.csv" not in got and "sub/deeper/data.csv" not in got
    assert "x.log" not in got and "sub/y.log" not in got  # root patterns reach all depths


def test_negation_and_dir_only_patterns(root: Path) -> None:
    write_tree(root, {
        ".gitignore": "*.log\n!keep.log\nout/\n",
        "a.log": "", "keep.log": "", "sub/keep.log": "",
        "out/x": "", "sub/out/y": "", "other/out": "a file named out",
    })
    got = scanned(root)
    assert "a.log" not in got and {"keep.log", "sub/keep.log"} <= got
    assert not any(p.startswith(("out", "sub/out")) for p in got)
    assert "other/out" in got  # `out/` matches folders only


def test_deeper_gitignore_overrides_shallower(root: Path) -> None:
    write_tree(root, {".gitignore": "*.dat\n", "sub/.gitignore": "!*.dat\n",
                          "a.dat": "", "sub/b.dat": ""})
    got = scanned(root)
    assert "a.dat" not in got and "sub/b.dat" in got


def test_offloadignore_applies_after_every_gitignore(root: Path) -> None:
    write_tree(root, {
        ".gitignore": "data/\n",
        "sub/.gitignore": "*.csv\n",
        ".modal-offloadignore": "!data/\n!*.csv\nsecrets.txt\n",
        "data/train.bin": "", "sub/t.csv": "", "secrets.txt": "", "sub/secrets.txt": "",
    })
    got = scanned(root)
    assert {"data/train.bin", "sub/t.csv"} <= got
    assert "secrets.txt" not in got and "sub/secrets.txt" not in got


def test_offloadignore_in_a_subfolder_is_relative_to_it(root: Path) -> None:
    write_tree(root, {"sub/.modal-offloadignore": "/big\n", "sub/big": "", "big": ""})
    got = scanned(root)
    assert "big" in got and "sub/big" not in got


def test_defaults_can_be_reincluded_but_git_cannot(root: Path) -> None:
    write_tree(root, {".modal-offloadignore": "!.cache/\n!.git/\n",
                          ".cache/x": "", ".git/HEAD": ""})
    got = scanned(root)
    assert ".cache/x" in got
    assert not any(p.startswith(".git") for p in got)


def test_ignored_folder_is_not_descended(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(root, {"node_modules/a/b.js": "", ".gitignore": "gen/\n", "gen/c/d": "",
                          "src/e.py": ""})
    listed: list[str] = []
    real = os.scandir

    def spy(path: str) -> object:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(vars(manifest_mod)["os"], "scandir", spy)
    scanned(root)
    assert not any("node_modules" in p or "gen" in p for p in listed), listed


def test_ignored_checks_every_ancestor(root: Path) -> None:
    write_tree(root, {".gitignore": "build/\n"})
    rules = IgnoreRules.load(root)
    assert rules.ignored("node_modules/x/y.js", False)
    assert rules.ignored("build/lib/x.py", False)
    assert rules.ignored("build", True) and not rules.ignored("build", False)
    assert not rules.ignored("src/build.py", False)
    for bad in ("", ".", "..", "../x", "/etc/passwd", "a//b", "a/./b"):
        assert rules.ignored(bad, False), bad


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_agrees_with_git_check_ignore(root: Path) -> None:
    files = {
        ".gitignore": "*.log\n!important.log\n/root_only.txt\nbuild/\ndocs/**/*.tmp\n"
                      "a?c.txt\n[xy].md\n",
        "sub/.gitignore": "local.txt\n!*.keep\n",
        "x.log": "", "important.log": "", "sub/y.log": "", "root_only.txt": "",
        "sub/root_only.txt": "", "build/o": "", "sub/build/o": "", "docs/a/b/c.tmp": "",
        "docs/c.tmp": "", "abc.txt": "", "abbc.txt": "", "x.md": "", "z.md": "",
        "sub/local.txt": "", "local.txt": "", "sub/z.keep": "", "z.keep": "",
    }
    write_tree(root, files)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    paths = [p for p in files if not p.endswith(".gitignore")]
    proc = subprocess.run(["git", "-C", str(root), "check-ignore", "--no-index", *paths],
                          capture_output=True, text=True)
    git_ignored = set(proc.stdout.split())
    rules = IgnoreRules.load(root)
    ours = {p for p in paths if rules.ignored(p, False)}
    assert ours == git_ignored
