"""Marked blocks in user files: the only way we edit a file we do not own.

A block looks like (comment syntax per file type)::

    # >>> modal-offload:NAME [flags] >>> managed by modal-offload; edit outside this block (ID)
    ...body...
    # <<< modal-offload:NAME <<<

where ID is `modal-offload-owned: 6d0f3b1e SUM` (see Ownership below).

The flags record what the insertion itself changed (`created`: the file did not exist;
`nl`: a newline was added to end the user's last line), so removal restores the file byte
for byte without any state kept elsewhere. Before the first edit of a file, a backup copy
is kept under the backups folder.

Ownership (issue 13): a block is ours only when its begin line carries our exact marker
(`owned.MARKER`) and SUM, 12 hex digits of a hash of its name, flags and body. A block that
merely looks like ours (copied from docs or someone's dotfiles, or written by hand) is never
touched; one of ours whose body was edited since is repaired by install but never deleted by
uninstall, which refuses with one line instead. Symlinked and read-only files: see `userfile`.
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
from ..errors import BadInput, OffloadError
from . import userfile


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


def _marker() -> str:
    from .owned import MARKER  # owned imports Status from here: resolved at call time

    return MARKER


def _begin_re(name: str, syntax: Syntax) -> re.Pattern[str]:
    return re.compile(
        rf"^{re.escape(syntax.open)}>>> modal-offload:{re.escape(name)}(?P<flags>( \w+)*) >>>"
        rf" managed by modal-offload; edit outside this block"
        rf" \({re.escape(_marker())} (?P<sum>[0-9a-f]{{12}})\){re.escape(syntax.close)}\n", re.M)


def _end_line(name: str, syntax: Syntax) -> str:
    return syntax.line(f"<<< modal-offload:{name} <<<") + "\n"


def _sum(name: str, flags: tuple[str, ...], body: str) -> str:
    return hashlib.sha256(f"{name}\0{' '.join(flags)}\0{body}".encode()).hexdigest()[:12]


def _norm(body: str) -> str:
    return body if body.endswith("\n") or not body else body + "\n"


def render(name: str, body: str, syntax: Syntax, flags: tuple[str, ...] = ()) -> str:
    flag_text = "".join(f" {f}" for f in flags)
    body = _norm(body)
    begin = syntax.line(f">>> modal-offload:{name}{flag_text} >>> managed by modal-offload; "
                        f"edit outside this block ({_marker()} {_sum(name, flags, body)})")
    return f"{begin}\n{body}{_end_line(name, syntax)}"


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    flags: tuple[str, ...]
    body: str
    intact: bool  # the body is what we wrote (its sum matches)


def find(text: str, name: str, syntax: Syntax) -> Found | None:
    """Our block `name` in `text`: one whose begin line carries our marker and a sum."""
    match = _begin_re(name, syntax).search(text)
    if match is None:
        return None
    end_line = _end_line(name, syntax)
    end = text.find(end_line, match.end())
    if end < 0:
        raise OffloadError(f"our block {name!r} has a begin marker but no end marker",
                           "fix the file by hand: restore the end marker or delete the block")
    flags, body = tuple(match.group("flags").split()), text[match.end():end]
    return Found(match.start(), end + len(end_line), flags, body,
                 _sum(name, flags, body) == match.group("sum"))


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
        return userfile.target(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise OffloadError(f"{path} is not UTF-8 text", "we leave it untouched") from None


def _installed(path: Path, name: str, body: str, syntax: Syntax) -> tuple[str | None, str]:
    """(the file's text now or None, its text with our block in place)."""
    text = _read(path)
    if text is None:
        return None, render(name, body, syntax, ("created",))
    found = find(text, name, syntax)
    if found is not None:
        return text, text[:found.start] + render(name, body, syntax, found.flags) \
            + text[found.end:]
    if text == "" or text.endswith("\n"):
        return text, text + render(name, body, syntax)
    return text, text + "\n" + render(name, body, syntax, ("nl",))


def can_install(path: Path, name: str, body: str, syntax: Syntax = HASH) -> None:
    """Raise (changing nothing) when `install` would have to change a file it may not."""
    text, new = _installed(path, name, body, syntax)
    if new != text:
        userfile.check_writable(path)


def install(path: Path, name: str, body: str, syntax: Syntax = HASH) -> bool:
    """Add or update our block; True when the file changed. Idempotent."""
    text, new = _installed(path, name, body, syntax)
    if new == text:
        return False
    userfile.check_writable(path)
    backup(path)
    userfile.write(path, new.encode("utf-8"))
    return True


_ANY_NAME = re.compile(r">>> modal-offload:(?P<name>[^\s>]+)")


def _next_block(text: str, syntax: Syntax) -> tuple[str, tuple[str, ...], str, str] | None:
    """Our intact block starting at the very beginning of `text`, if any:
    (name, flags, body, the text after it)."""
    head = _ANY_NAME.match(text, len(syntax.open)) if text.startswith(syntax.open) else None
    if head is None:
        return None
    found = find(text, head.group("name"), syntax)
    if found is None or found.start != 0 or not found.intact:
        return None
    return head.group("name"), found.flags, found.body, text[found.end:]


def _uninstalled(path: Path, name: str, syntax: Syntax) -> tuple[Found, str, str] | None:
    """None when there is nothing of ours; else (our block, the file's text, its text
    without the block). Refuses a block of ours that was edited since we wrote it."""
    text = _read(path)
    found = None if text is None else find(text, name, syntax)
    if text is None or found is None:
        return None
    if not found.intact:
        raise BadInput(f"our block {name!r} in {path} was edited since we wrote it; "
                       "nothing was changed", "remove the block by hand, keeping what you need")
    before, after = text[:found.start], text[found.end:]
    following = _next_block(after, syntax)
    if found.flags and following is not None:
        # Another of our blocks follows directly: what this insertion changed (the file's
        # creation, the added newline) is now undone with that block, whichever goes last.
        name2, flags2, body2, rest = following
        merged = tuple(dict.fromkeys((*flags2, *found.flags)))
        after = render(name2, body2, syntax, merged) + rest
    elif "nl" in found.flags and before.endswith("\n") and not after:
        before = before[:-1]
    return found, text, before + after


def can_uninstall(path: Path, name: str, syntax: Syntax = HASH) -> None:
    """Raise (changing nothing) when `uninstall` would refuse this file."""
    if _uninstalled(path, name, syntax) is not None:
        userfile.check_writable(path)


def uninstall(path: Path, name: str, syntax: Syntax = HASH) -> bool:
    """Remove our block, undoing exactly what installing it did; True when changed."""
    planned = _uninstalled(path, name, syntax)
    if planned is None:
        return False
    found, _text, new = planned
    if "created" in found.flags and new == "":
        userfile.remove(path)
        return True
    userfile.write(path, new.encode("utf-8"))
    return True


def check(path: Path, name: str, body: str, syntax: Syntax = HASH) -> Status:
    text = _read(path)
    found = None if text is None else find(text, name, syntax)
    if found is None:
        return Status.MISSING
    return Status.OK if found.intact and found.body == _norm(body) else Status.DRIFTED
