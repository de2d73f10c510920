"""A byte progress bar on stderr for long first syncs; `rich` is imported only here, and
only when a bar is actually shown (it costs ~30 ms and is not needed on most syncs)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

# A first sync smaller than this finishes before a bar would be worth drawing.
LARGE_BYTES = 32 << 20
LARGE_FILES = 5000


def wanted(enabled: bool, content_bytes: int, files: int) -> bool:
    return enabled and (content_bytes >= LARGE_BYTES or files >= LARGE_FILES) and _tty()


def _tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def byte_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n_bytes)`; the bar is drawn on stderr and removed at the end."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
