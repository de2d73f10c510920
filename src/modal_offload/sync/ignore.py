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
Secret-looking files (`.env`, `id_rsa`, `*.pem`, ...) are ignored too unless the config
allows them by name; a `!pattern` in a rule file cannot re-include them (the rule files
travel with a cloned repository, the config is the user's). Both compare folded names
(names.py), so `.GIT` or an NFD spelling cannot slip past on a case-insensitive disk.

Git's other ignore sources (`$GIT_DIR/info/exclude`, `core.excludesFile` or the global
`~/.config/git/ignore`, and `.gitignore` files above the workspace root inside the same
repository) come in as *outer* layers (gitsources.py reads them on the laptop; the remote
agent receives them in the apply header), weaker than the tree's own files, as in git.

An ignored directory is not descended into, so (as in git) a negation cannot re-include a
file below an ignored folder. Ignore files are read lazily, once per folder, when that
folder is first consulted; a scan therefore only reads those in folders it walks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .names import (
    HARD_NAMES,
    STAGING_PREFIX,
    TMP_SUFFIX,
    SecretFilter,
    fold,
    hard_ignored,
    hard_key,
)

GITIGNORE = ".gitignore"
OFFLOADIGNORE = ".modal-offloadignore"  # same name as paths.IGNORE_FILE_NAME (kept light)

DEFAULT_NAMES = frozenset({
    ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".tox", ".cache",
})
DEFAULT_SUFFIXES = (".pyc",)

# pathspec marks "matched as a directory" with a named group; a combined prefilter regex
# may not repeat a group name, and only needs to know *whether* something matches.
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported by `_Layer.parse`: a tree without ignore files never loads it
    import pathspec  # (~7 ms, on every in-process command, issue 17)

__all__ = ["GITIGNORE", "HARD_NAMES", "OFFLOADIGNORE", "STAGING_PREFIX", "TMP_SUFFIX",
           "DirRules", "IgnoreRules", "hard_ignored"]


def default_ignored(name: str) -> bool:
    return name in DEFAULT_NAMES or name.endswith(DEFAULT_SUFFIXES)


@dataclass(frozen=True)
class _Layer:
    """The patterns of one ignore file, relative to its folder `base` ('' for the root)."""

    base: str
    spec: pathspec.GitIgnoreSpec
    prefilter: re.Pattern[str] | None  # fast "no pattern can match" test; None = always check
    prefix: str = ""  # outer layers: the workspace root's path below the file's folder, + "/"

    @classmethod
    def parse(cls, base: str, text: str, prefix: str = "") -> _Layer | None:
        import pathspec

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
        return cls(base, spec, prefilter, prefix)


class DirRules:
    """The rules that apply to the entries of one folder (its own and its ancestors' files)."""

    __slots__ = ("_checks", "_secrets", "reldir")

    def __init__(self, reldir: str, layers: tuple[_Layer, ...],
                 secrets: SecretFilter | None = None) -> None:
        self.reldir = reldir
        self._secrets = secrets
        # Per layer, this folder's path relative to the layer's folder, so that checking an
        # entry costs one string concatenation per layer (this runs once per scanned path).
        checks = []
        for layer in layers:  # strongest first
            rel = reldir[len(layer.base) + 1:] if layer.base else reldir
            checks.append((layer.prefix + (f"{rel}/" if rel else ""), layer.prefilter,
                           layer.spec))
        self._checks = tuple(checks)

    def ignored(self, name: str, is_dir: bool) -> bool:
        """Whether entry `name` of this folder is ignored (its ancestors are known not to be)."""
        key = fold(name)
        if hard_key(key):
            return True
        if self._secrets is not None and self._secrets.secret_key(self.reldir, key, is_dir):
            return True
        for prefix, prefilter, spec in self._checks:
            sub = f"{prefix}{name}/" if is_dir else prefix + name
            if prefilter is not None and prefilter.match(sub) is None:
                continue
            decision: bool | None = spec.check_file(sub).include
            if decision is not None:
                return decision
        return default_ignored(name)


class IgnoreRules:
    """All ignore rules of the tree at `root`, loaded lazily per folder and cached.

    `outer`: (prefix, text) of git's ignore sources outside the tree, strongest first
    (see gitsources.py); `allow_secrets`: secret-looking names the user allowed by name.
    """

    def __init__(self, root: Path, outer: Sequence[tuple[str, str]] = (),
                 allow_secrets: Iterable[str] = ()) -> None:
        self.root = root
        self.outer = tuple((str(p), str(t)) for p, t in outer)
        self.allow_secrets = tuple(allow_secrets)
        self._secrets = SecretFilter(self.allow_secrets)
        self._outer = tuple(layer for p, t in self.outer
                            if (layer := _Layer.parse("", t, p)) is not None)
        self._dirs: dict[str, DirRules] = {}
        self._git: dict[str, tuple[_Layer, ...]] = {}
        self._off: dict[str, tuple[_Layer, ...]] = {}

    @classmethod
    def load(cls, root: Path, outer: Sequence[tuple[str, str]] = (),
             allow_secrets: Iterable[str] = ()) -> IgnoreRules:
        """Rules for the tree at `root`; files are read on first use of each folder."""
        return cls(Path(root), outer, allow_secrets)

    def to_wire(self) -> dict[str, object]:
        """What the remote agent needs to apply the same rules (its tree has no .git)."""
        return {"outer": [list(o) for o in self.outer], "allow_secrets": list(self.allow_secrets)}

    @classmethod
    def from_wire(cls, root: Path, data: object) -> IgnoreRules:
        """The inverse of `to_wire`; anything malformed gives the built-in rules."""
        if not isinstance(data, dict):
            return cls(Path(root))
        outer = data.get("outer")
        allow = data.get("allow_secrets")
        pairs = [(str(o[0]), str(o[1])) for o in outer
                 if isinstance(o, list) and len(o) == 2] if isinstance(outer, list) else []
        names = [str(a) for a in allow] if isinstance(allow, list) else []
        return cls(Path(root), pairs, names)

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
        rules = DirRules(reldir, off + git + self._outer, self._secrets)
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
