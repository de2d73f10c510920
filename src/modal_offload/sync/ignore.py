"""Which workspace paths never travel: git's ignore semantics, via `pathspec`.

Sources, from weakest to strongest (the last one that matches a path decides, as in git):
  1. built-in defaults (venvs, caches, `*.pyc`, ...), which a user file may re-include;
  2. every `.gitignore`, shallow to deep (a deeper file overrides a shallower one);
  3. every `.modal-offloadignore`, shallow to deep, after *all* `.gitignore` files, so a
     `!pattern` there re-includes what git ignores anywhere in the tree.
Patterns in a file are relative to that file's folder; `dir/` patterns match folders only.

Some names are *hard* ignored and cannot be re-included: `.git` (repository metadata must
never be overwritten by a sync-back), `.modal-shims` (would route commands back to us) and
the sync engine's own temporary names (`*.mo-sync-tmp`, `.modal-offload-staging-*`).

An ignored directory is not descended into, so (as in git) a negation cannot re-include a
file below an ignored folder. Ignore files are read lazily, once per folder, when that
folder is first consulted; a scan therefore only reads those in folders it walks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

import pathspec

GITIGNORE = ".gitignore"
OFFLOADIGNORE = ".modal-offloadignore"  # same name as paths.IGNORE_FILE_NAME (kept light)

DEFAULT_NAMES = frozenset({
    ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".tox", ".cache",
})
DEFAULT_SUFFIXES = (".pyc",)
HARD_NAMES = frozenset({".git", ".modal-shims"})
TMP_SUFFIX = ".mo-sync-tmp"
STAGING_PREFIX = ".modal-offload-staging-"

# pathspec marks "matched as a directory" with a named group; a combined prefilter regex
# may not repeat a group name, and only needs to know *whether* something matches.
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")


_ALL_NAMES = DEFAULT_NAMES | HARD_NAMES
_ALL_SUFFIXES = (*DEFAULT_SUFFIXES, TMP_SUFFIX)


def hard_ignored(name: str) -> bool:
    """True for names no rule file can re-include."""
    return name in HARD_NAMES or name.endswith(TMP_SUFFIX) or name.startswith(STAGING_PREFIX)


def default_ignored(name: str) -> bool:
    return name in DEFAULT_NAMES or name.endswith(DEFAULT_SUFFIXES)


@dataclass(frozen=True)
class _Layer:
    """The patterns of one ignore file, relative to its folder `base` ('' for the root)."""

    base: str
    spec: pathspec.GitIgnoreSpec
    prefilter: re.Pattern[str] | None  # fast "no pattern can match" test; None = always check

    @classmethod
    def parse(cls, base: str, text: str) -> _Layer | None:
        spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
        regexes = [rx.pattern for p in spec.patterns
                   if p.include is not None and (rx := getattr(p, "regex", None)) is not None]
        if not regexes:
            return None
        try:
            prefilter: re.Pattern[str] | None = re.compile(
                "|".join(f"(?:{_NAMED_GROUP.sub('(?:', r)})" for r in regexes))
        except re.error:
            prefilter = None
        return cls(base, spec, prefilter)


class DirRules:
    """The rules that apply to the entries of one folder (its own and its ancestors' files)."""

    __slots__ = ("_checks", "reldir")

    def __init__(self, reldir: str, layers: tuple[_Layer, ...]) -> None:
        self.reldir = reldir
        # Per layer, this folder's path relative to the layer's folder, so that checking an
        # entry costs one string concatenation per layer (this runs once per scanned path).
        checks = []
        for layer in layers:  # strongest first
            rel = reldir[len(layer.base) + 1:] if layer.base else reldir
            checks.append((f"{rel}/" if rel else "", layer.prefilter, layer.spec))
        self._checks = tuple(checks)

    def ignored(self, name: str, is_dir: bool) -> bool:
        """Whether entry `name` of this folder is ignored (its ancestors are known not to be)."""
        if name in _ALL_NAMES or name.endswith(_ALL_SUFFIXES) or name.startswith(STAGING_PREFIX):
            if hard_ignored(name):
                return True
        elif not self._checks:
            return False
        for prefix, prefilter, spec in self._checks:
            sub = f"{prefix}{name}/" if is_dir else prefix + name
            if prefilter is not None and prefilter.match(sub) is None:
                continue
            decision: bool | None = spec.check_file(sub).include
            if decision is not None:
                return decision
        return default_ignored(name)


class IgnoreRules:
    """All ignore rules of the tree at `root`, loaded lazily per folder and cached."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dirs: dict[str, DirRules] = {}
        self._git: dict[str, tuple[_Layer, ...]] = {}
        self._off: dict[str, tuple[_Layer, ...]] = {}

    @classmethod
    def load(cls, root: Path) -> IgnoreRules:
        """Rules for the tree at `root`; files are read on first use of each folder."""
        return cls(Path(root))

    def _read(self, reldir: str, filename: str, names: Container[str] | None) -> _Layer | None:
        if names is not None and filename not in names:
            return None
        path = os.path.join(self.root, reldir, filename)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:  # missing, a folder, unreadable: no rules from it
            return None
        return _Layer.parse(reldir, text)

    def for_dir(self, reldir: str, names: Container[str] | None = None) -> DirRules:
        """Rules for the entries of folder `reldir` ('' for the root), cached.

        `names`, when the caller has listed the folder anyway, saves probing for ignore
        files that are not there.
        """
        cached = self._dirs.get(reldir)
        if cached is not None:
            return cached
        if reldir:
            parent = reldir.rpartition("/")[0]
            self.for_dir(parent)
            git_up, off_up = self._git[parent], self._off[parent]
        else:
            git_up, off_up = (), ()
        git_own = self._read(reldir, GITIGNORE, names)
        off_own = self._read(reldir, OFFLOADIGNORE, names)
        # Stored strongest first: deeper before shallower, .modal-offloadignore before all
        # .gitignore layers.
        git = (git_own, *git_up) if git_own else git_up
        off = (off_own, *off_up) if off_own else off_up
        self._git[reldir], self._off[reldir] = git, off
        rules = DirRules(reldir, off + git)
        self._dirs[reldir] = rules
        return rules

    def ignored(self, relpath: str, is_dir: bool) -> bool:
        """Whether `relpath` (POSIX, relative to the root) or any folder above it is ignored.

        A path that is not a clean relative path ('', '.', '..', absolute) counts as ignored,
        so callers that forget to validate never act on it.
        """
        parts = relpath.split("/")
        if not relpath or relpath.startswith("/") or any(p in ("", ".", "..") for p in parts):
            return True
        reldir = ""
        for depth, name in enumerate(parts):
            last = depth == len(parts) - 1
            if self.for_dir(reldir).ignored(name, is_dir if last else True):
                return True
            reldir = f"{reldir}/{name}" if reldir else name
        return False
