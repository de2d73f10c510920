"""The machine-wide layer cache: where it lives, who may use it, and one lock per layer.

Layout under the cache directory (``$EMULATOR_ROOTFS_CACHE``, default
``/var/cache/modal-emulator``; never under ``$HOME``, which tests redirect):

* ``layers/<id>/diff/``: the layer's files (for the base layer: a whole Debian root);
* ``layers/<id>/meta.json``: the image state after the layer (env, workdir, cmd, lowers);
* ``locks/<id>.lock``: held while one process builds the layer (several emulators, worktrees
  and test processes share the cache, so concurrent builders of a layer are serialized);
* ``tmp/``: layers being built, renamed into ``layers/`` only when complete.

A layer directory is published with one `rename`, so a reader sees either nothing or a
complete layer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = "/var/cache/modal-emulator"
CACHE_ENV = "EMULATOR_ROOTFS_CACHE"


class CacheError(Exception):
    """The cache directory is unusable (wrong owner, writable by others)."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


def _check_owned(path: Path) -> None:
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"{path} is not a directory")
    if st.st_uid != os.geteuid():
        raise CacheError(f"{path} is owned by uid {st.st_uid}, not by us ({os.geteuid()})")
    if st.st_mode & 0o022:
        raise CacheError(f"{path} is writable by group or others; chmod go-w it")


class LayerCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_dir()
        self.layers = self.root / "layers"
        self.locks = self.root / "locks"
        self.tmp = self.root / "tmp"

    def prepare(self) -> None:
        """Create the directories (0755), check that they are ours alone, and delete what a
        builder that died mid-build left in tmp/ (a staging dir whose layer lock nobody holds)."""
        for path in (self.root, self.layers, self.locks, self.tmp):
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            _check_owned(path)
        for staged in self.tmp.iterdir():
            layer_id = staged.name.split(".", 1)[0]
            if not self.is_locked(layer_id):
                shutil.rmtree(staged, ignore_errors=True)

    def layer_dir(self, layer_id: str) -> Path:
        return self.layers / layer_id

    def meta(self, layer_id: str) -> dict[str, Any] | None:
        """The layer's metadata, or None if the layer is not (completely) built."""
        try:
            data: dict[str, Any] = json.loads((self.layer_dir(layer_id) / "meta.json").read_text())
        except FileNotFoundError:
            return None
        return data

    @contextlib.contextmanager
    def locked(self, layer_id: str) -> Iterator[None]:
        """Hold the layer's build lock (blocking). Checks the lock file is ours."""
        path = self.locks / f"{layer_id}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                raise CacheError(f"lock file {path} is not ours alone")
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def is_locked(self, layer_id: str) -> bool:
        """Whether another process holds the layer's lock right now (for a progress message)."""
        path = self.locks / f"{layer_id}.lock"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def staging(self, layer_id: str) -> Path:
        """A fresh directory to build the layer in (with an empty ``diff/``)."""
        path = Path(tempfile.mkdtemp(prefix=f"{layer_id}.", dir=self.tmp))
        (path / "diff").mkdir()
        return path

    def publish(self, layer_id: str, staged: Path, meta: dict[str, Any]) -> None:
        """Write the metadata and move the staged layer into place (caller holds the lock)."""
        (staged / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        target = self.layer_dir(layer_id)
        if target.exists():  # an incomplete leftover (no meta.json) from a crashed builder
            shutil.rmtree(target)
        os.rename(staged, target)

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)
