"""The only way commands talk to the user besides their own output: one-line notices."""

from __future__ import annotations

import sys
import time
import zlib

from . import paths

REPEAT_SECONDS = 3600.0


def notice(message: str) -> None:
    if message:
        print(f"modal-offload: {message}", file=sys.stderr, flush=True)


def once(message: str, every_seconds: float = REPEAT_SECONDS) -> str:
    """`message` the first time in `every_seconds` (per user), else "".

    For notices that would otherwise repeat on every routed command (an agent running
    hundreds of `ls` without credentials must not get hundreds of identical stderr lines,
    which would also spoil the commands' own error output).
    """
    marker = paths.state_dir() / "notices" / f"{zlib.crc32(message.encode()):08x}"
    try:
        if time.time() - marker.stat().st_mtime < every_seconds:
            return ""
    except FileNotFoundError:
        pass
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # cannot remember: saying it again is the safe side
    return message
