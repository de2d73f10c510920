"""Progress of a long first sync on the user's terminal: files, bytes, speed and an ETA.

`rich` is imported only here, and only when a bar is actually shown (it costs ~30 ms and
is not needed on most syncs). Drawn only on a terminal: on stderr when the caller says
`True` (an in-process command, where sys.stderr is the user's), or into the sink the
caller hands over (the session host draws on the client's own stderr, which it checked
is a terminal: host/runner.py). The bar is transient: it disappears when the sync ends.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

# A first sync smaller than this finishes before a bar would be worth drawing.
LARGE_BYTES = 32 << 20
LARGE_FILES = 5000
# Estimated tar framing per member on the wire (a header block and padding): with the
# content, what the byte total and the ETA are counted in.
MEMBER_BYTES = 1024

Sink = Callable[[bytes], None]
Target = bool | Sink  # True: sys.stderr when it is a terminal; a sink: drawn there


def wanted(enabled: Target, content_bytes: int, files: int) -> bool:
    if not (content_bytes >= LARGE_BYTES or files >= LARGE_FILES):
        return False
    return possible(enabled)


def possible(enabled: Target) -> bool:
    """Whether a bar could be drawn at all (a terminal to draw it on), whatever the size:
    a first sync that can never show one streams its walk instead of counting first."""
    return enabled is not False and (callable(enabled) or _tty())


def _tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _SinkFile(io.TextIOBase):
    """A terminal reached through a sink (the client's stderr, from the host)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink(text.encode("utf-8", "replace"))
        return len(text)

    def isatty(self) -> bool:
        return True  # the caller checked


def _columns(sink: Sink) -> int | None:
    """The width of the terminal behind `sink` when it says which (gateway.fd_sink), so a
    line is never wider than the user's terminal (it would wrap and stay on screen)."""
    fd = getattr(sink, "fd", None)
    try:
        return os.get_terminal_size(fd).columns if isinstance(fd, int) else None
    except OSError:
        return None


class Bar:
    """What a sync tells the bar: `update(files, content_bytes)` as it goes (the files
    total is set by `expect`)."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task
        self._files_total = 0

    def expect(self, files: int) -> None:
        self._files_total = files
        self._progress.update(self._task, files=f"0/{files:,} files")

    def update(self, files: int, content_bytes: int) -> None:
        self._progress.update(self._task, completed=content_bytes + MEMBER_BYTES * files,
                              files=f"{files:,}/{self._files_total:,} files")


@contextlib.contextmanager
def byte_bar(total: int, description: str, target: Target = True) -> Iterator[Bar]:
    """Yield a `Bar` drawn on `target` (see the module docstring) and removed at the end;
    `total` counts content bytes plus MEMBER_BYTES per member."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if callable(target):
        file: TextIO = _SinkFile(target)  # type: ignore[assignment]
        console = Console(file=file, force_terminal=True, width=_columns(target))
    else:
        console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[files]}"),
               DownloadColumn(), TransferSpeedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total, files="")
        yield Bar(progress, task)
