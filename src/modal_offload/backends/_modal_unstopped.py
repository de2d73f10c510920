"""Commands given up while Modal was out of reach, still to be stopped (issue 19).

Past the resume grace a command is stopped at once when Modal answers within a few seconds;
when it does not (the network is still down), the command would run on unwatched until its
sandbox's time limit. So it is written down here, per session, and the next open of that
session that reaches Modal stops it first (`ModalBackend._reuse`): no orphan keeps billing
longer than the outage.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from .. import paths
from ..fileio import atomic_write_text, exclusive


def _path(name: str) -> Path:
    return paths.sessions_state_dir() / f"{name}.unstopped.json"


def _read(path: Path) -> list[dict[str, str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [e for e in data if isinstance(e, dict)
            and isinstance(e.get("sandbox_id"), str) and isinstance(e.get("pid"), str)]


def remember(name: str, sandbox_id: str, pid_name: str) -> None:
    path = _path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_suffix(".lock")):
        entries = _read(path)
        entries.append({"sandbox_id": sandbox_id, "pid": pid_name})
        atomic_write_text(path, json.dumps(entries), mode=0o600)


def take(name: str, sandbox_id: str) -> list[str]:
    """The pid files of `sandbox_id`'s commands to stop; forgets every entry (those of other
    sandboxes ended with their sandbox)."""
    path = _path(name)
    if not path.exists():
        return []
    with exclusive(path.with_suffix(".lock")):
        entries = _read(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return [e["pid"] for e in entries if e["sandbox_id"] == sandbox_id]
