"""Our own tar writer and reader (issue 21) against tarfile: the same bytes out, the same
members in, for any name, size, mode and link a tree can hold."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.manifest import DIR, FILE, LINK, diff, scan
from modal_offload.sync.tarread import TarReader
from modal_offload.sync.tarstream import _header, pack
from tests.sync.conftest import write_tree

_names = st.one_of(
    st.text(st.characters(codec="ascii", exclude_characters="\0/"), min_size=1, max_size=130),
    st.text(st.characters(codec="utf-8", exclude_characters="\0"),  # no surrogates
            min_size=1, max_size=60),
    st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b).map(
        lambda b: b.decode("utf-8", "surrogateescape")))
_sizes = st.one_of(st.integers(0, 10_000), st.sampled_from([8 ** 11 - 1, 8 ** 11, 1 << 40]))
_mtimes = st.one_of(st.integers(-5, 2_000_000_000), st.sampled_from([8 ** 11 - 1, 8 ** 11]))


def old_tarinfo(name: str, kind: str, mode: int, size: int, mtime: int,
                target: str) -> tarfile.TarInfo:
    """A member as the previous packer (tarfile) described it."""
    ti = tarfile.TarInfo(name)
    ti.type = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, LINK: tarfile.SYMTYPE}[kind]
    ti.mode = mode & 0o777
    ti.mtime = max(0, mtime)
    ti.size = size
    ti.linkname = target
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def tarfile_header(name: str, kind: str, mode: int, size: int, mtime: int, target: str) -> bytes:
    return old_tarinfo(name, kind, mode, size, mtime, target).tobuf(
        tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@settings(max_examples=300, deadline=None)
@given(_names, st.sampled_from([FILE, DIR, LINK]), st.integers(0, 0o7777), _sizes, _mtimes,
       st.one_of(st.just(""), _names))
@example("/", DIR, 0, 0, 0, "")  # a folder name already ending in a slash (CI found it)
def test_headers_are_the_bytes_tarfile_writes(name: str, kind: str, mode: int, size: int,
                                              mtime: int, target: str) -> None:
    size = size if kind == FILE else 0
    target = target if kind == LINK else ""
    assert _header(name, kind, mode, size, mtime, target) == tarfile_header(
        name, kind, mode, size, mtime, target)


def tarfile_pack(root: Path, paths: list[str]) -> bytes:
    """The previous packer, for the byte-for-byte comparison of whole archives."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        for rel in paths:
            path = root / rel
            st_ = path.lstat()
            if path.is_symlink():
                kind, target, size = LINK, os.readlink(path), 0
            elif path.is_dir():
                kind, target, size = DIR, "", 0
            else:
                kind, target, size = FILE, "", st_.st_size
            ti = old_tarinfo(rel, kind, 0o777 if kind == LINK else st_.st_mode, size,
                             st_.st_mtime_ns // 1_000_000_000, target)
            with open(path, "rb") if kind == FILE else io.BytesIO() as fh:
                tar.addfile(ti, fh if kind == FILE else None)
    return buf.getvalue()


def test_a_tree_packs_to_the_archive_tarfile_wrote(tmp_path: Path) -> None:
    root = tmp_path / "src"
    write_tree(root, {"a.py": "print(1)\n", "pkg/é.txt": "accent", "n" * 120: "long",
                      "big.bin": os.urandom(3 << 20), "empty": None, "d/e/f": "deep"})
    (root / "bad\udcff".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
     ).write_text("undecodable")
    os.symlink("pkg/é.txt", root / "link")
    os.symlink("t" * 150, root / "longlink")
    os.chmod(root / "a.py", 0o755)
    manifest = scan(root, IgnoreRules.load(root))
    paths = diff(None, manifest).changed
    ours = io.BytesIO()
    pack(root, paths, dict(manifest.entries), ours)
    assert ours.getvalue() == tarfile_pack(root, paths)


_content = st.binary(max_size=2000)
_member = st.tuples(st.sampled_from(["f", "d", "l", "h", "p"]), _names, _content)


@settings(max_examples=150, deadline=None)
@given(st.lists(_member, max_size=8))
def test_the_reader_sees_the_members_tarfile_sees(members: list[tuple[str, str, bytes]]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        for kind, name, data in members:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = 0o640, 1_700_000_000
            if kind == "f":
                ti.size = len(data)
            else:
                ti.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE,
                           "p": tarfile.FIFOTYPE}[kind]
                ti.linkname = data.decode("utf-8", "surrogateescape").replace("\0", "") \
                    if kind in "lh" else ""
            tar.addfile(ti, io.BytesIO(data) if kind == "f" else None)
    data = buf.getvalue()
    expected = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|", encoding="utf-8",
                      errors="surrogateescape") as tar:
        for m in tar:
            content = tar.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            expected.append((m.name, m.type, m.mode, m.mtime, m.linkname, content))
    reader = TarReader(io.BytesIO(data))
    seen = [(m.name, m.type, m.mode, m.mtime, m.linkname,
             b"".join(reader.chunks()) if m.isreg() else b"") for m in reader]
    assert seen == expected


def test_damage_tarfile_would_read_as_the_end_is_an_error() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tree(root, {"a": "1", "b": "2"})
        manifest = scan(root, IgnoreRules.load(root))
        buf = io.BytesIO()
        pack(root, ["a", "b"], dict(manifest.entries), buf)
    data = bytearray(buf.getvalue())
    data[1024 + 10] ^= 0xFF  # the second member's header: tarfile stops quietly there
    reader = TarReader(io.BytesIO(bytes(data)))
    with pytest.raises(tarfile.ReadError, match="checksum"):
        [m.name for m in reader]
    cut = TarReader(io.BytesIO(buf.getvalue()[:1024]))  # no end-of-archive block
    with pytest.raises(tarfile.ReadError, match="end of data"):
        [m.name for m in cut]
