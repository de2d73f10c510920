"""The per-command image check: the workspace's current `ImageSpec`, cheaply.

A derivation reads and hashes files (and may run `node --version`); a command must not pay
for that when nothing changed. So the spec is stored with a *stat key*: the (size, mtime_ns,
inode, ctime_ns) of every candidate file at the workspace root, of every file the spec read,
of the local `node` when Node matters, plus the settings and local Python that shaped it.
A warm check stats those few paths and compares (one `scandir` of the root, a handful of
`stat`s, and in a fresh process one small JSON read); any difference re-derives, and the
derivation itself hashes contents, so an edit that keeps size and mtime still changes the
hash once ctime moves. `make bench` times it (benchmarks/bench_image.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .. import paths
from ..config import Settings
from ..fileio import atomic_write_text
from . import spec as _spec

_MEMO: dict[str, tuple[list[Any], _spec.ImageSpec]] = {}
_LOCK = threading.Lock()


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def _settings_key(settings: Settings) -> list[Any]:
    return [settings.image_python, list(settings.image_deps), list(settings.image_extras),
            list(settings.image_groups), list(settings.image_commands),
            [list(p) for p in settings.image_env], settings.image_node,
            list(settings.apt_packages), list(settings.pip_packages),
            list(sys.version_info[:2]), _spec.FORMAT]


def _root_key(root: str) -> list[Any]:
    found = []
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                name = entry.name
                if name in _spec.CANDIDATES or (name.startswith("requirements")
                                                and name.endswith(".txt")):
                    found.append([name, _stat(entry.path)])
    except OSError:
        pass
    found.sort()
    return found


def stat_key(root: Path, settings: Settings, read: list[str]) -> list[Any]:
    """Everything a spec depends on that a stat can see; `read`: files the spec read."""
    base = str(root)
    key: list[Any] = [_settings_key(settings), _root_key(base),
                      [[rel, _stat(os.path.join(base, rel))] for rel in read]]
    if settings.image_node == "yes" or (settings.image_node == "auto" and any(
            e[0] == "package.json" for e in key[1])):
        node = _spec.local_node()
        key.append([node, _stat(node) if node else None])
    return key


def _store_path(root: Path) -> Path:
    from ..workspace import Workspace

    return paths.cache_dir() / "images" / "specs" / f"{Workspace(root).id}.json"


def current(root: Path, settings: Settings) -> _spec.ImageSpec:
    """The workspace's image spec now: from memory or disk when no stat changed."""
    memo_key = str(root)
    with _LOCK:
        hit = _MEMO.get(memo_key)
    if hit is not None:
        known = hit[1]
        if stat_key(root, settings, [p for p, _ in known.inputs]) == hit[0]:
            return known
    store = _store_path(root)
    try:
        data = json.loads(store.read_bytes())
        known = _spec.ImageSpec.from_dict(data["spec"])
        key = stat_key(root, settings, [p for p, _ in known.inputs])
        if data.get("key") == key:
            with _LOCK:
                _MEMO[memo_key] = (key, known)
            return known
    except (OSError, ValueError, KeyError, TypeError):
        pass
    derived = _spec.derive(root, settings)
    key = stat_key(root, settings, [p for p, _ in derived.inputs])
    with contextlib.suppress(OSError):  # a cache: the next command derives again
        atomic_write_text(store, json.dumps({"version": 1, "key": key,
                                             "spec": derived.as_dict()}))
    with _LOCK:
        _MEMO[memo_key] = (key, derived)
    return derived
