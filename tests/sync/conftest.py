"""Shared fixtures for sync tests: real trees on disk, real local sandbox sessions."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from modal_offload.backends._base import Session, SessionSpec
from modal_offload.backends.local import LocalBackend
from modal_offload.sync.client import WorkspaceSync

Tree = Mapping[str, "str | bytes | None"]  # path -> content; None makes a folder


def write_tree(root: Path, files: Tree) -> None:
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes | str | None]]:
    """Everything under `root`, by relative path: (kind, mode, content or link target)."""
    out: dict[str, tuple[str, int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("l", 0, os.readlink(path))
            elif path.is_dir():
                out[rel] = ("d", st.st_mode & 0o777, None)
            else:
                out[rel] = ("f", st.st_mode & 0o777, path.read_bytes())
    return out


def age(path: Path, seconds: float = 3600) -> None:
    """Push mtime into the past, out of the racy window, as files long untouched are."""
    st = path.lstat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)),
             follow_symlinks=False)


def age_tree(root: Path, seconds: float = 3600) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            age(Path(dirpath) / name, seconds)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(root=tmp_path / "sandboxes")


@pytest.fixture
def open_session(backend: LocalBackend, workspace: Path) -> Callable[[], Session]:
    def opener() -> Session:
        return backend.open_session(SessionSpec(name="mo-sync-test", workspace=workspace))
    return opener


@pytest.fixture
def session(open_session: Callable[[], Session]) -> Iterator[Session]:
    s = open_session()
    yield s
    s.terminate()


@pytest.fixture
def make_sync(workspace: Path, tmp_path: Path) -> Callable[..., WorkspaceSync]:
    def make(session: Session, **kw: object) -> WorkspaceSync:
        kw.setdefault("max_bytes", 64 << 20)
        return WorkspaceSync(workspace, session, tmp_path / "cache", **kw)  # type: ignore[arg-type]
    return make
