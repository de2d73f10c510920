"""Marked blocks in user files: the only way we edit a file we do not own.

A block looks like (comment syntax per file type)::

    # >>> modal-offload:NAME [flags] >>> managed by modal-offload; edit outside this block
    ...body...
    # <<< modal-offload:NAME <<<

The flags record what the insertion itself changed (`created`: the file did not exist;
`nl`: a newline was added to end the user's last line), so removal restores the file byte
for byte without any state kept elsewhere. Before the first edit of a file, a backup copy
is kept under the backups folder.
"""

from __future__ import annotations

import enum
import hashlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import OffloadError
from ..fileio import atomic_write_bytes


class Status(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    DRIFTED = "drifted"
    FOREIGN = "foreign"  # something not ours where ours should be
    NEEDS_APPROVAL = "needs approval"  # in place, but the tool runs it only once approved
    UNTRUSTED = "untrusted"  # in place, but the tool ignores it in an untrusted folder
    UNVERIFIED = "unverified"  # in place; the tool itself could not be run to prove it


@dataclass(frozen=True)
class Syntax:
    open: str
    close: str = ""

    def line(self, text: str) -> str:
        return f"{self.open}{text}{self.close}"


HASH = Syntax("# ")
MARKDOWN = Syntax("<!-- ", " -->")


def _begin_re(name: str, syntax: Syntax) -> re.Pattern[str]:
    return re.compile(
        rf"^{re.escape(syntax.open)}>>> modal-offload:{re.escape(name)}(?P<flags>( \w+)*) >>>"
        rf".*{re.escape(syntax.close)}\n", re.M)


def _end_line(name: str, syntax: Syntax) -> str:
    return syntax.line(f"<<< modal-offload:{name} <<<") + "\n"


def render(name: str, body: str, syntax: Syntax, flags: tuple[str, ...] = ()) -> str:
    flag_text = "".join(f" {f}" for f in flags)
    begin = syntax.line(f">>> modal-offload:{name}{flag_text} >>> managed by modal-offload; "
                        "edit outside this block")
    body = body if body.endswith("\n") or not body else body + "\n"
    return f"{begin}\n{body}{_end_line(name, syntax)}"


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    flags: tuple[str, ...]
    body: str


def find(text: str, name: str, syntax: Syntax) -> Found | None:
    match = _begin_re(name, syntax).search(text)
    if match is None:
        return None
    end_line = _end_line(name, syntax)
    end = text.find(end_line, match.end())
    if end < 0:
        raise OffloadError(f"our block {name!r} has a begin marker but no end marker",
                           "fix the file by hand: restore the end marker or delete the block")
    return Found(match.start(), end + len(end_line), tuple(match.group("flags").split()),
                 text[match.end():end])


def backup(path: Path) -> Path | None:
    """Keep a copy of `path` as it was before our first edit (once per file)."""
    if not path.exists():
        return None
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    folder = paths.backups_dir()
    existing = sorted(folder.glob(f"{path.name}.{key}.*.bak"))
    if existing:
        return existing[0]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.name}.{key}.{time.strftime('%Y%m%d-%H%M%S')}.bak"
    shutil.copy2(path, target)
    return target


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise OffloadError(f"{path} is not UTF-8 text", "we leave it untouched") from None


def install(path: Path, name: str, body: str, syntax: Syntax = HASH) -> bool:
    """Add or update our block; True when the file changed. Idempotent."""
    text = _read(path)
    if text is None:
        new = render(name, body, syntax, ("created",))
    else:
        found = find(text, name, syntax)
        if found is not None:
            new = text[:found.start] + render(name, body, syntax, found.flags) + text[found.end:]
        elif text == "" or text.endswith("\n"):
            new = text + render(name, body, syntax)
        else:
            new = text + "\n" + render(name, body, syntax, ("nl",))
    if new == text:
        return False
    backup(path)
    atomic_write_bytes(path, new.encode("utf-8"))
    return True


def uninstall(path: Path, name: str, syntax: Syntax = HASH) -> bool:
    """Remove our block, undoing exactly what installing it did; True when changed."""
    text = _read(path)
    if text is None:
        return False
    found = find(text, name, syntax)
    if found is None:
        return False
    before, after = text[:found.start], text[found.end:]
    if "nl" in found.flags and before.endswith("\n") and not after:
        before = before[:-1]
    new = before + after
    if "created" in found.flags and new == "":
        path.unlink()
        return True
    atomic_write_bytes(path, new.encode("utf-8"))
    return True


def check(path: Path, name: str, body: str, syntax: Syntax = HASH) -> Status:
    text = _read(path)
    found = None if text is None else find(text, name, syntax)
    if found is None:
        return Status.MISSING
    expected = body if body.endswith("\n") or not body else body + "\n"
    return Status.OK if found.body == expected else Status.DRIFTED
