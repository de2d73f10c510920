"""Which shim folders shells may activate (issue 13): only those `shims install` wrote.

A `.modal-shims` folder is workspace content, and a workspace can come from anyone (a cloned
repository, an unpacked archive), so the marker file in it proves nothing. Trust lives in a
registry in the user's state folder, `paths.shims_registry()`: a file of `path<TAB>sha256<TAB>inode`
lines (physical paths), mode 0600.

Shells check it in plain sh (`_mo_trust` in templates/modal_activate.sh, no Python): the
registry is the user's own and not group/world writable, it lists the folder, and nothing in
the folder changed status (ctime) after the registry was written. ctime cannot be set back
without root, so neither `git checkout`, `tar -x` nor `touch -d` can make an altered file
look old; a CRC (`cksum`) of the files could be forged. The sha256 is checked here: every
registration re-hashes each recorded folder and drops the ones that changed, so that moving
the registry's mtime forward never blesses a change made before it.

`verdict()` runs that same shell function, so doctor reports exactly what a shell does.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import BadInput
from ..fileio import atomic_write_text, exclusive
from . import owned

HEADER = ("# modal-offload trusted shims v2: path<TAB>sha256<TAB>inode; written by "
          "`shims install`\n")
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "modal_activate.sh"
def problems(folder: Path) -> list[str]:
    """Why `folder` cannot be trusted as it stands ([] when it can): what a shell would run
    from it must all be ours, owned by this user and writable by nobody else."""
    try:
        st = folder.lstat()
    except FileNotFoundError:
        return [f"{folder} does not exist"]
    if not stat.S_ISDIR(st.st_mode):
        return [f"{folder} is not a plain folder"]
    uid = os.geteuid()
    found = [f"{folder} is writable by others"] if st.st_mode & 0o022 else []
    if st.st_uid != uid:
        found.append(f"{folder} belongs to another user")
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        est = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(est.st_mode):
            found.append(f"{entry.name} is not a regular file")
        elif est.st_uid != uid:
            found.append(f"{entry.name} belongs to another user")
        elif est.st_mode & 0o022:
            found.append(f"{entry.name} is writable by others")
        elif est.st_mode & 0o111 and not owned.is_owned(Path(entry.path)):
            found.append(f"{entry.name} was not written by modal-offload")
    return found


def digest(folder: Path) -> str:
    """sha256 over every entry's name, mode and content, in name order."""
    outer = hashlib.sha256()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        mode = entry.stat(follow_symlinks=False).st_mode
        inner = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest() \
            if stat.S_ISREG(mode) else "-"
        outer.update(f"{entry.name}\0{mode:o}\0{inner}\n".encode())
    return outer.hexdigest()


def _registry() -> Path:
    reg = paths.shims_registry()
    if not reg.is_absolute():
        raise BadInput(f"the shims registry {reg} is not an absolute path",
                       "set MODAL_OFFLOAD_STATE_DIR to an absolute folder")
    return reg


def read() -> dict[str, str]:
    """path -> sha256, as recorded (no checks; a registry that is not ours reads as empty)."""
    reg = _registry()
    try:
        if reg.lstat().st_uid != os.geteuid():
            return {}
        text = reg.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return {}
    out = {}
    for line in text.splitlines():
        path, sep, rest = line.partition("\t")
        if sep and not line.startswith("#"):
            out[path] = rest.partition("\t")[0]
    return out


def _still_valid(path: str, sha: str) -> bool:
    folder = Path(path)
    try:
        return not problems(folder) and digest(folder) == sha
    except OSError:
        return False


def _write(entries: dict[str, str]) -> None:
    reg = _registry()
    # The folder's inode: a tree prepared before this write and moved (renamed) to a
    # recorded path keeps its old ctimes, but it is another folder (red team, issue 13).
    lines = "".join(f"{p}\t{h}\t{os.lstat(p).st_ino}\n" for p, h in sorted(entries.items()))
    atomic_write_text(reg, HEADER + lines, mode=0o600)
    _stamp(reg)


def _stamp(reg: Path) -> None:
    """Make the registry's mtime "now" and no older than its own ctime: shells compare every
    shim file's ctime with this mtime, and the registry itself must not look changed.
    utime(NULL) sets both to the same instant on Linux (fs/attr.c notify_change); where the
    ctime lands a little later, the mtime is moved just past it (by 1 ms, then more)."""
    os.utime(reg)
    st = os.stat(reg)
    ahead = 1_000_000
    for _ in range(10):
        if st.st_ctime_ns <= st.st_mtime_ns:
            return
        os.utime(reg, ns=(st.st_ctime_ns + ahead, st.st_ctime_ns + ahead))
        st = os.stat(reg)
        ahead *= 4
    raise OSError(f"cannot give {reg} an mtime at or after its ctime")


def register(folder: Path) -> list[str]:
    """Record `folder` (as it is now) as trusted; returns recorded folders dropped because
    they changed or vanished since. Raises BadInput when `folder` cannot be trusted."""
    folder = folder.resolve()
    if "\n" in str(folder) or "\t" in str(folder):
        raise BadInput(f"cannot record {folder!r}: its path holds a tab or newline",
                       "move the workspace to a plainer path")
    found = problems(folder)
    if found:
        raise BadInput(f"not trusting {folder}: {'; '.join(found)}",
                       "move what is not ours out of the folder, then run "
                       "`modal-offload shims install` again")
    reg = _registry()
    with exclusive(reg):
        before = read()
        kept = {p: h for p, h in before.items() if p != str(folder) and _still_valid(p, h)}
        kept[str(folder)] = digest(folder)
        _write(kept)
    return sorted(set(before) - set(kept))


def unregister(folder: Path) -> bool:
    key = str(folder.resolve())
    reg = _registry()
    with exclusive(reg):
        entries = read()
        if key not in entries:
            return False
        del entries[key]
        _write(entries)
    return True


def verdict(folder: Path) -> str | None:
    """What a shell decides about `folder`: None when it activates, else the reason. Runs the
    shell's own check (`_mo_trust`), so doctor and shells cannot disagree."""
    script = '. "$1"; if _mo_trust "$2"; then echo trusted; else echo "$_mo_why"; fi'
    out = subprocess.run(["sh", "-c", script, "sh", str(TEMPLATE), str(folder)],
                         capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    reason = out.stdout.strip() or out.stderr.strip() or f"the check exited {out.returncode}"
    return None if reason == "trusted" else reason


@dataclass(frozen=True)
class Finding:
    folder: Path
    reason: str


def untrusted_around(start: Path) -> list[Finding]:
    """Shim folders (with our marker) from `start` up to / that shells there would ignore."""
    found = []
    for folder in (start, *start.parents):
        shims = paths.shims_dir(folder)
        if paths.shims_marker(folder).is_file():
            reason = verdict(shims)
            if reason is not None:
                found.append(Finding(shims, reason))
    return found


def altered() -> list[Finding]:
    """Recorded folders whose content no longer matches its hash."""
    return [Finding(Path(p), "changed or gone since it was installed")
            for p, h in sorted(read().items()) if not _still_valid(p, h)]
