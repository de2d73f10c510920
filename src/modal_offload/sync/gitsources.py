"""Git's ignore sources outside the workspace tree, read on the laptop (issue 13, class 7).

git ignores a path by, strongest first (gitignore(5), "PATTERN FORMAT" and the list of
sources above it): `.gitignore` files from the path's folder up to the work tree's top,
then `$GIT_DIR/info/exclude`, then the file named by `core.excludesFile` (default
`$XDG_CONFIG_HOME/git/ignore`, else `~/.config/git/ignore`). The tree's own `.gitignore`
files are read by ignore.py; this module returns the rest as *outer* layers:
`(prefix, text)` pairs, strongest first, where `prefix` is the workspace root's path
below the source's folder (+ "/"), since those patterns are relative to the work tree's
top, not to our root.

No `git` subprocess (this runs before every sync): the config files are read with a
small parser that understands what `core.excludesFile` needs (sections, quoted values,
`~/`), not `[include]`/`[includeIf]` (documented in docs/decisions.md). The global
excludes file also applies to a workspace that is not a git repository: leaving a file
on the laptop that git would have ignored is the safe side.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import paths


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _git_dirs(top: Path) -> tuple[Path, Path] | None:
    """(git dir, common dir) of the work tree at `top`: `.git` as a folder, or as a file
    `gitdir: PATH` (worktrees, submodules) whose folder may name its `commondir`."""
    dotgit = top / ".git"
    if dotgit.is_dir():
        return dotgit, dotgit
    text = _read(dotgit)
    if text is None or not text.startswith("gitdir:"):
        return None
    gitdir = (top / text[len("gitdir:"):].strip()).resolve()
    common_text = _read(gitdir / "commondir")
    common = (gitdir / common_text.strip()).resolve() if common_text else gitdir
    return gitdir, common


def find_top(root: Path) -> Path | None:
    """The nearest folder at or above `root` holding `.git` (folder or file)."""
    for folder in (root, *root.parents):
        if (folder / ".git").exists():
            return folder
    return None


def config_value(text: str, section: str, key: str) -> str | None:
    """The last `key` of `[section]` in git-config `text` (names compare case-insensitively)."""
    found = config_values(text, section, key)
    return found[-1] if found else None


def config_values(text: str, section: str, key: str) -> list[str]:
    """Every `key` of `[section]` (any subsection: `[includeIf "..."]`), in order."""
    current = ""
    found: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line[1:line.find("]")].strip().split()[0].lower() if "]" in line else ""
            continue
        name, eq, value = line.partition("=")
        if current != section or name.strip().lower() != key or not eq:
            continue
        found.append(_unquote(value.strip()))
    return found


def _unquote(value: str) -> str:
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(value):
        c = value[i]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and i + 1 < len(value):
            i += 1
            out.append({"n": "\n", "t": "\t"}.get(value[i], value[i]))
        elif c in "#;" and not quoted:
            break
        else:
            out.append(c)
        i += 1
    return "".join(out).strip()


def _config_files(common: Path | None, gitdir: Path | None) -> list[Path]:
    """git's config files for a repository, weakest first (later ones override)."""
    home = paths.home()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    global_files = ([Path(os.environ["GIT_CONFIG_GLOBAL"])] if os.environ.get("GIT_CONFIG_GLOBAL")
                    else [Path(xdg) / "git" / "config", home / ".gitconfig"])
    files = [] if os.environ.get("GIT_CONFIG_NOSYSTEM") else [Path("/etc/gitconfig")]
    files += global_files
    if common is not None:
        files.append(common / "config")
    if gitdir is not None and gitdir != common:
        files.append(gitdir / "config.worktree")
    return files


def _core_path(common: Path | None, gitdir: Path | None, key: str) -> str | None:
    """The last `core.<key>` over every config file, `~/` expanded."""
    value: str | None = None
    for path in _config_files(common, gitdir):
        text = _read(path)
        if text is not None and (v := config_value(text, "core", key)):
            value = v
    return paths.expand_user(value) if value else value


def _excludes_file(common: Path | None, gitdir: Path | None) -> Path:
    value = _core_path(common, gitdir, "excludesfile")
    if value:
        return Path(value)
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(paths.home() / ".config")
    return Path(xdg) / "git" / "ignore"


def _expand(value: str) -> str:
    return paths.expand_user(value)


def _inside(path: str, root: Path) -> str | None:
    """`path` relative to `root` (posix) when it lies inside it, lexically or once both
    are resolved (the same place through a symlinked path), else None."""
    pairs = ((Path(os.path.normpath(path)), Path(os.path.normpath(root))),
             (Path(path).resolve(), root.resolve()))
    for target, base in pairs:
        try:
            return target.relative_to(base).as_posix()
        except ValueError:
            continue
    return None


def config_targets(root: Path) -> list[str]:
    """Workspace paths (relative to `root`) that git's configuration points at, so git reads
    or runs them without asking: `core.hooksPath` (husky, lefthook: run on the next local
    commit), `include.path`/`includeIf.*.path` (a shared `.gitconfig` in the tree, whose
    `core.fsmonitor` runs on every `git status`), `core.excludesFile` and
    `core.attributesFile`. Sync back protects them as it protects `.git/` itself.
    Relative `core.*` paths are taken from the work tree's top, where git runs; relative
    includes from the folder of the config file that names them (git-config(1))."""
    root = Path(root)
    top = find_top(root)
    dirs = _git_dirs(top) if top is not None else None
    found: list[str] = []
    for conf in _config_files(dirs[1] if dirs else None, dirs[0] if dirs else None):
        text = _read(conf)
        if text is None:
            continue
        values = [(top or root, v) for k in ("hookspath", "excludesfile", "attributesfile")
                  for v in config_values(text, "core", k)]
        values += [(conf.parent, v) for sec in ("include", "includeif")
                   for v in config_values(text, sec, "path")]
        for base, value in values:
            rel = _inside(os.path.join(base, _expand(value)), root) if value else None
            if rel is not None:
                found.append(rel)
    return found


def outer_layers(root: Path) -> list[tuple[str, str]]:
    """Git's ignore sources for the tree at `root` that live outside it, strongest first."""
    root = Path(root)
    top = find_top(root)
    out: list[tuple[str, str]] = []
    gitdir = common = None
    if top is not None:
        rel = root.relative_to(top).as_posix()
        # .gitignore files above the root, deepest first (the root's own is ignore.py's).
        folder = root
        while folder != top:
            folder = folder.parent
            text = _read(folder / ".gitignore")
            if text:
                out.append((root.relative_to(folder).as_posix() + "/", text))
        dirs = _git_dirs(top)
        if dirs is not None:
            gitdir, common = dirs
            text = _read(common / "info" / "exclude")
            if text:
                out.append(("" if rel == "." else rel + "/", text))
    text = _read(_excludes_file(common, gitdir))
    if text:
        prefix = "" if top is None or top == root else root.relative_to(top).as_posix() + "/"
        out.append((prefix, text))
    return out
