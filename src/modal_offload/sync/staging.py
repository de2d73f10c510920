"""Staging folders: where a sync back unpacks before moving into place (extract.py), and
the removal of those a killed run left behind (issue 13).

Apart from safety.py (which needs `tarfile`): the removal runs before every sync back,
including the usual one that finds nothing changed remotely, and must not cost that
import there (issue 17).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .names import STAGING_PREFIX


def make_staging(root: Path) -> str:
    """A private staging folder in `root`, named after this process so that a later run
    can tell a dead run's leftovers from a live one's."""
    import tempfile  # only when a sync back has something to unpack

    return tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=root)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user
        return True
    return True


def remove_stale_staging(root: Path | str) -> list[str]:
    """Remove staging folders left in `root` by a run that was killed (issue 13); a
    folder of a process still alive is left alone. Returns the names removed."""
    removed: list[str] = []
    try:
        with os.scandir(root) as it:
            names = [de.name for de in it if de.name.startswith(STAGING_PREFIX)
                     and de.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for name in names:
        pid_text = name[len(STAGING_PREFIX):].partition("-")[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(os.path.join(root, name))
            removed.append(name)
    return removed
