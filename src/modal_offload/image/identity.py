"""The image is part of a session's identity (issue 12).

A session's name ends in the image hash (`workspace.session_name`), so a changed dependency
file opens a *new* session built from the new image instead of reusing a sandbox that still
has the old one. This module remembers, per workspace and resources, which image the last
session used, so that the move is said in one line with what changed and the old session is
terminated (its time settled by the backend's `terminate`) rather than left to idle out.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import paths
from ..backends._base import Backend, SessionSpec
from ..errors import OffloadError
from ..fileio import atomic_write_text, exclusive
from .spec import ImageSpec, changes


def _record_path(family: str) -> Path:
    return paths.sessions_state_dir() / f"{family}.image.json"


def _load(family: str) -> dict[str, Any] | None:
    try:
        data = json.loads(_record_path(family).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("session"), str) else None


def previous(family: str) -> dict[str, Any] | None:
    return _load(family)


def move(backend: Backend, family: str, spec: SessionSpec, image: ImageSpec) -> str:
    """Before opening `spec`: if the family last used another image, end that session and
    return the one-line notice ("" when nothing moved)."""
    with exclusive(_record_path(family).with_suffix(".move")):
        last = _load(family)
        if last is None or last.get("hash") == image.hash or last["session"] == spec.name:
            return ""
        what = changes(last.get("summary") or {}, image.summary()) or ["its inputs changed"]
        ended = ""
        with contextlib.suppress(OffloadError):
            old = backend.find_session(replace(spec, name=last["session"]))
            if old is not None:
                old.terminate()
                ended = f"; ended {last['session']}"
        # Recorded at once, so a concurrent command does not try the same move again.
        remember(family, spec.name, image)
        return f"the remote image changed ({'; '.join(what)}): new session {spec.name}{ended}"


def remember(family: str, session: str, image: ImageSpec) -> None:
    atomic_write_text(_record_path(family), json.dumps(
        {"version": 1, "session": session, "hash": image.hash, "summary": image.summary()},
        indent=2))


def built_marker(backend: str, image_hash: str) -> Path:
    return paths.cache_dir() / "images" / "built" / f"{backend}-{image_hash}"


def known_built(backend: str, image_hash: str) -> bool:
    return built_marker(backend, image_hash).exists()


def mark_built(backend: str, image_hash: str) -> None:
    marker = built_marker(backend, image_hash)
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
