"""PATH shims: one tiny POSIX sh script per routed executable name, in `<workspace>/.modal-shims`.

A shim starts no Python to decide anything: local-only names get no shim (decided here, at
install time), and at run time the shim only looks at the env markers and $PWD:

- inside the remote (MODAL_OFFLOAD_REMOTE=1), inside our pipeline (MODAL_OFFLOAD_BYPASS=1),
  or outside the workspace: exec the real binary, found on PATH with every shims dir removed;
- otherwise exec the gateway, `<abs modal-offload> exec -- NAME "$@"`, also with the shims
  dirs removed from PATH, so nothing our pipeline starts locally can re-enter a shim.

Every file we write carries `owned.MARKER`; anything else in the folder is left alone, but
shells activate the folder only once `trust.register` recorded it (issue 13), which refuses a
folder holding executables we did not write.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import isolated, paths, routing
from ..config import Settings
from ..errors import BadInput
from ..local_run import BYPASS_MARKER, path_without_shims
from . import owned, trust
from .blocks import Status

FORMAT_VERSION = 1
# Absolute paths zsh users type or tools spell out; each is wrapped only when its name is routed.
COMMON_ABSOLUTE_NAMES = (
    "ls", "cat", "cp", "mv", "rm", "mkdir", "head", "tail", "grep", "find", "xargs", "sed",
    "awk", "sort", "uniq", "wc", "cut", "tr", "du", "df", "tar", "gzip", "zip", "unzip", "curl",
    "wget", "python", "python3", "pip", "pip3", "node", "npm", "npx", "pytest", "ruby", "perl",
    "go", "cargo", "rustc", "gcc", "g++", "cc", "clang", "java", "hostname", "uname", "whoami",
    "id", "env", "printenv", "date", "sleep", "uptime", "nproc", "free", "ps", "jq", "rg", "fd",
)
ABSOLUTE_DIRS = ("/bin", "/usr/bin", "/usr/local/bin", "/opt/homebrew/bin")
_SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-@%,")


def _q(text: str) -> str:
    """Single-quote for sh."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def gateway_argv() -> list[str]:
    """The absolute command a shim execs: the console script next to this interpreter, else
    one on PATH (never a shim), else `python -m modal_offload` via this interpreter."""
    here = Path(sys.executable).parent / "modal-offload"
    if os.access(here, os.X_OK):
        return [str(here)]
    found = shutil.which("modal-offload", path=path_without_shims(os.environ.get("PATH", "")))
    if found:
        return [str(Path(found).absolute())]
    return isolated.local_argv("modal_offload")  # not `-m`: shims run in the workspace


def render_shim(name: str, gateway: list[str], root: Path) -> str:
    roots = {str(root)}
    roots.add(str(root.resolve()))
    where = "|".join(f"{_q(r)}|{_q(r)}/*" for r in sorted(roots))
    return f"""#!/bin/sh
# {owned.MARKER} shim for {name}: `modal-offload shims refresh` rewrites it
set -f
_mo_p=
IFS=:
for _mo_d in $PATH; do
  case $_mo_d in */.modal-shims|*/.modal-shims/) ;; *) _mo_p=${{_mo_p:+$_mo_p:}}$_mo_d ;; esac
done
unset IFS _mo_d
PATH=$_mo_p
export PATH
if [ "${{MODAL_OFFLOAD_REMOTE:-}}" != 1 ] && [ "${{{BYPASS_MARKER}:-}}" != 1 ]; then
  case ${{PWD:-}} in {where})
    exec {" ".join(_q(a) for a in gateway)} exec -- {_q(name)} "$@" ;;
  esac
fi
exec {_q(name)} "$@"
"""


def render_marker(gateway: list[str], names: Iterable[str]) -> str:
    return (f"# {owned.MARKER}: modal-offload shims are installed in this folder\n"
            f"version={FORMAT_VERSION}\ngateway={' '.join(gateway)}\n"
            f"names={len(list(names))}\n")


GITIGNORE = f"# {owned.MARKER}: generated, machine-specific\n*\n"


def render_zsh_wrappers(shims: Path, names: Iterable[str]) -> str:
    wanted = set(names)
    targets = [f"{d}/{n}" for n in COMMON_ABSOLUTE_NAMES if n in wanted
               for d in ABSOLUTE_DIRS if os.access(f"{d}/{n}", os.X_OK)]
    lines = [
        f"# {owned.MARKER}: zsh functions named like /bin/ls, so absolute paths route too",
        "_mo_abs() {",
        "  local _mo_n=$1 _mo_real=$2; shift 2",
        '  if [[ -n ${MODAL_SHIMS_ACTIVE:-} && ${MODAL_OFFLOAD_REMOTE:-} != 1 &&'
        f' ${{{BYPASS_MARKER}:-}} != 1 && -x {_q(str(shims))}/$_mo_n ]]; then',
        f'    {_q(str(shims))}/$_mo_n "$@"',
        "  else",
        '    command "$_mo_real" "$@"',
        "  fi",
        "}",
        "_mo_abs_names=(" + " ".join(_q(t) for t in targets) + ")",
    ]
    lines += [f'{_q(t)}() {{ _mo_abs {_q(Path(t).name)} {_q(t)} "$@"; }}' for t in targets]
    return "\n".join(lines) + "\n"


def executables(path_env: str) -> dict[str, str]:
    """name -> first executable file of that name on PATH (shims dirs skipped)."""
    found: dict[str, str] = {}
    for folder in path_without_shims(path_env).split(os.pathsep):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name in found or not set(entry.name) <= _SAFE_NAME:
                continue
            try:
                if entry.is_file() and os.access(entry.path, os.X_OK):
                    found[entry.name] = entry.path
            except OSError:
                continue
    return found


def planned_names(settings: Settings, path_env: str) -> list[str]:
    return sorted(n for n in executables(path_env) if routing.is_shimmed(n, settings))


@dataclass
class Result:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept_foreign: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # other recorded folders that changed
    total: int = 0


def _owned_shims(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir()
            if not p.name.startswith(".") and not p.is_symlink() and owned.is_owned(p)}


def _write_if_changed(path: Path, text: str, mode: int) -> bool:
    """Shims are regenerable, and thousands: a plain temp + rename, no fsync per file."""
    try:
        if path.read_text(encoding="utf-8") == text and path.stat().st_mode & 0o777 == mode:
            return False
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError):
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def install(root: Path, settings: Settings, environ: Mapping[str, str] | None = None) -> Result:
    """Write shims for every routed name on PATH and drop our shims for vanished names."""
    env = os.environ if environ is None else environ
    folder = _own_folder(paths.shims_dir(root))
    names = planned_names(settings, env.get("PATH", ""))
    gateway = gateway_argv()
    result = Result(total=len(names))
    ours_before = _owned_shims(folder)
    for name in names:
        target = folder / name
        if (target.exists() or target.is_symlink()) and name not in ours_before:
            result.kept_foreign.append(name)  # someone else's file: never touched
            continue
        if _write_if_changed(target, render_shim(name, gateway, root), 0o755):
            result.written.append(name)
    for name in sorted(ours_before - set(names)):
        owned.remove(folder / name)
        result.removed.append(name)
    owned.write(folder / ".gitignore", GITIGNORE)
    owned.write(paths.zsh_absolute_wrappers(root), render_zsh_wrappers(folder, names))
    owned.write(paths.shims_marker(root), render_marker(gateway, names))
    # Recording goes last: shells only activate a folder whose install completed.
    try:
        result.dropped = trust.register(folder)
    except BadInput:
        trust.unregister(folder)
        raise
    return result


def _own_folder(folder: Path) -> Path:
    """The shims folder, created if needed; refused when it is a symlink or not a folder
    (whatever a symlink points at is not ours to fill or to trust)."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise BadInput(f"{folder} is not a plain folder", "move it away, then run "
                       "`modal-offload shims install` again")
    folder.mkdir(mode=0o755, exist_ok=True)
    mode = folder.stat().st_mode
    if mode & 0o022:  # e.g. made under umask 002: shells refuse a folder others can write
        os.chmod(folder, mode & 0o755)
    return folder


def uninstall(root: Path) -> list[str]:
    folder = paths.shims_dir(root)
    removed = sorted(_owned_shims(folder))
    # Trust first: a shell starting meanwhile no longer activates a half-removed folder.
    if not folder.is_symlink():
        trust.unregister(folder)
    for special in (paths.shims_marker(root), paths.zsh_absolute_wrappers(root),
                    folder / ".gitignore"):
        owned.remove(special)
    for name in removed:
        owned.remove(folder / name)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return removed


def installed(root: Path) -> list[str]:
    return sorted(_owned_shims(paths.shims_dir(root)))


@dataclass(frozen=True)
class Freshness:
    status: Status
    missing: list[str]  # routed names on PATH without a shim
    stale: list[str]  # our shims for names no longer routed or no longer on PATH
    outdated: list[str]  # our shims whose text differs from what install would write


def freshness(root: Path, settings: Settings, environ: Mapping[str, str] | None = None
              ) -> Freshness:
    env = os.environ if environ is None else environ
    if not paths.shims_marker(root).is_file():
        return Freshness(Status.MISSING, [], [], [])
    wanted = set(planned_names(settings, env.get("PATH", "")))
    have = set(installed(root))
    folder = paths.shims_dir(root)
    foreign = {n for n in wanted - have if (folder / n).exists()}
    gateway = gateway_argv()
    outdated = [n for n in sorted(have & wanted)
                if (folder / n).read_text(encoding="utf-8", errors="replace")
                != render_shim(n, gateway, root)]
    missing, stale = sorted(wanted - have - foreign), sorted(have - wanted)
    ok = not (missing or stale or outdated)
    return Freshness(Status.OK if ok else Status.DRIFTED, missing, stale, outdated)
