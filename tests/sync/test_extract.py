"""Safe extraction of real tar streams: hostile members refused, atomic, all-or-nothing."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modal_offload.sync.extract import OverCap, Placement, SafeExtractor
from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.safety import check_link_target
from tests.sync.conftest import snapshot, write_tree

Member = tuple[str, str, str | bytes]  # (kind, name, content | link target)


def make_tar(members: list[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, payload in members:
            ti = tarfile.TarInfo(name)
            ti.mode = 0o644
            data = b""
            if kind == "f":
                data = payload if isinstance(payload, bytes) else payload.encode()
                ti.size = len(data)
            elif kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, str(payload)
            elif kind == "c":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "b":
                ti.type = tarfile.BLKTYPE
            elif kind == "p":
                ti.type = tarfile.FIFOTYPE
            tar.addfile(ti, io.BytesIO(data) if kind == "f" else None)
    return buf.getvalue()


class Box:
    """A root to extract into, with a sibling folder that must never change."""

    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.outside = base / "outside"
        self.root.mkdir()
        self.outside.mkdir()
        (self.outside / "victim").write_text("precious")

    def extract(self, members: list[Member], **kw: object) -> object:
        return SafeExtractor(self.root, **kw).extract(  # type: ignore[arg-type]
            io.BytesIO(make_tar(members)))

    def outside_untouched(self) -> bool:
        victim = self.outside / "victim"
        return (os.listdir(self.outside) == ["victim"] and not victim.is_symlink()
                and victim.read_text() == "precious"
                and sorted(os.listdir(self.outside.parent)) == ["outside", "root"])


@pytest.fixture
def box(tmp_path: Path) -> Box:
    base = tmp_path / "box"
    base.mkdir()
    return Box(base)


@pytest.mark.parametrize(("members", "reason"), [
    ([("f", "/etc/passwd", "x")], "absolute"),
    ([("f", "../outside/victim", "x")], ".."),
    ([("f", "a/../../outside/victim", "x")], ".."),
    ([("f", "a/./b", "x")], ".."),
    ([("l", "ln", "/etc")], "absolute"),
    ([("l", "ln", "../outside")], "outside"),
    ([("l", "a/ln", "../../outside")], "outside"),
    ([("l", "ln", "a/../../outside")], "after a name"),
    ([("h", "hard", "../outside/victim")], "hard link"),
    ([("c", "null", "")], "character device"),
    ([("b", "disk", "")], "block device"),
    ([("p", "fifo", "")], "fifo"),
])
def test_hostile_members_are_refused(box: Box, members: list[Member], reason: str) -> None:
    result = box.extract(members)
    assert [r for _, r in result.refused] and reason in result.refused[0][1]  # type: ignore[attr-defined]
    assert os.listdir(box.root) == [] and box.outside_untouched()


def test_member_through_a_symlink_in_the_archive_is_refused(box: Box) -> None:
    result = box.extract([("d", "sub", ""), ("l", "s", "sub"), ("f", "s/evil", "x")])
    assert [p for p, _ in result.refused] == ["s/evil"]  # type: ignore[attr-defined]
    assert not (box.root / "sub" / "evil").exists()


def test_member_through_an_existing_symlink_is_refused(box: Box) -> None:
    os.symlink(box.outside, box.root / "out")
    result = box.extract([("f", "out/victim", "pwned"), ("f", "out/new", "x")])
    assert len(result.refused) == 2  # type: ignore[attr-defined]
    assert box.outside_untouched()


def test_link_into_an_existing_outside_symlink_is_refused_physically(box: Box) -> None:
    os.symlink(box.outside, box.root / "out")
    result = box.extract([("l", "innocent", "out/victim")])
    assert "resolves outside" in result.refused[0][1]  # type: ignore[attr-defined]
    assert not os.path.lexists(box.root / "innocent")


def test_chained_links_cannot_escape(box: Box) -> None:
    result = box.extract([("l", "a", "."), ("l", "b", "a/.."), ("f", "b/outside/victim", "x")])
    assert {p for p, _ in result.refused} == {"b"}  # type: ignore[attr-defined]
    assert not (box.root / "b").is_symlink()  # b/outside/victim landed in real folders
    assert box.outside_untouched()


def test_safe_members_land_with_modes_mtimes_and_links(box: Box) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("bin/run.sh")
        ti.size, ti.mode, ti.mtime = 4, 0o755, 1_600_000_000
        tar.addfile(ti, io.BytesIO(b"echo"))
        ln = tarfile.TarInfo("bin/alias")
        ln.type, ln.linkname = tarfile.SYMTYPE, "run.sh"
        tar.addfile(ln)
        up = tarfile.TarInfo("docs/up")
        up.type, up.linkname = tarfile.SYMTYPE, "../bin/run.sh"
        tar.addfile(up)
    result = SafeExtractor(box.root).extract(io.BytesIO(buf.getvalue()))
    assert not result.refused
    st = (box.root / "bin" / "run.sh").stat()
    assert st.st_mode & 0o777 == 0o755 and st.st_mtime == 1_600_000_000
    assert (box.root / "docs" / "up").read_text() == "echo"
    assert result.installed["bin/run.sh"].hash == result.installed["bin/run.sh"].hash
    assert {"bin", "bin/run.sh", "bin/alias", "docs", "docs/up"} <= set(result.installed)


def test_files_land_by_rename_and_no_temp_is_left(box: Box) -> None:
    (box.root / "f").write_text("old")
    with open(box.root / "f") as reader:  # a reader holding the old file keeps old bytes
        inode = os.stat(box.root / "f").st_ino
        box.extract([("f", "f", "new content")])
        assert reader.read() == "old"
    assert (box.root / "f").read_text() == "new content"
    assert os.stat(box.root / "f").st_ino != inode
    assert os.listdir(box.root) == ["f"]


def test_truncated_stream_changes_nothing(box: Box) -> None:
    (box.root / "keep").write_text("old")
    data = make_tar([("f", "keep", "new"), ("f", "big", "x" * 100_000)])
    with pytest.raises(tarfile.ReadError):
        SafeExtractor(box.root).extract(io.BytesIO(data[:30_000]))
    assert snapshot(box.root) == {"keep": ("f", (box.root / "keep").stat().st_mode & 0o777,
                                           b"old")}


def test_size_cap_is_enforced_while_streaming(box: Box) -> None:
    with pytest.raises(OverCap):
        box.extract([("f", "a", "x" * 600), ("f", "b", "y" * 600)], max_bytes=1000)
    assert os.listdir(box.root) == []


def test_ignored_and_duplicate_members_are_refused(box: Box) -> None:
    (box.root / ".gitignore").write_text("secret\n")
    result = box.extract([("f", "node_modules/x.js", "x"), ("f", "secret", "s"),
                          ("f", "ok", "1"), ("f", "ok", "2")],
                         rules=IgnoreRules.load(box.root))
    refused = dict(result.refused)  # type: ignore[attr-defined]
    assert "ignored" in refused["node_modules/x.js"] and "ignored" in refused["secret"]
    assert (box.root / "ok").read_text() == "1"
    assert not (box.root / "node_modules").exists()


def test_sidecar_never_clobbers(box: Box) -> None:
    (box.root / "f").write_text("local")
    res1 = box.extract([("f", "f", "remote")], policy=lambda rel, e: Placement.SIDECAR)
    (path, copy, _), = res1.sidecars  # type: ignore[attr-defined]
    assert path == "f" and copy is not None and copy.startswith("f.remote-")
    assert (box.root / "f").read_text() == "local"
    assert (box.root / copy).read_text() == "remote"
    (box.root / copy).write_text("user edited the copy")
    res2 = box.extract([("f", "f", "remote")], policy=lambda rel, e: Placement.SIDECAR)
    copy2 = res2.sidecars[0][1]  # type: ignore[attr-defined]
    assert copy2 == f"{copy}-2" and (box.root / copy).read_text() == "user edited the copy"


def test_delete_refuses_traversal_and_keeps_unsynced_content(box: Box) -> None:
    os.symlink(box.outside, box.root / "out")
    write_tree(box.root, {"d/__pycache__/m.pyc": "", "e/user.txt": "", "f": ""})
    res = SafeExtractor(box.root).delete(["out/victim", "d", "e", "f", "../outside/victim"],
                                         rules=IgnoreRules.load(box.root))
    assert res.deleted == ["d", "f"]  # d held only ignored files
    assert [p for p, _ in res.kept] == ["e"]
    assert {p for p, _ in res.refused} == {"out/victim", "../outside/victim"}
    assert box.outside_untouched()


def test_link_target_rules() -> None:
    assert check_link_target("a/b/l", "../../x") is None
    assert check_link_target("a/b/l", "../../../x") is not None
    assert check_link_target("l", "./x/./y") is None
    assert check_link_target("l", "x/../y") is not None


_component = st.sampled_from(["..", ".", "", "a", "b", "outside", "victim", "/", "c d", "é"])
_names = st.lists(_component, min_size=1, max_size=5).map("/".join)
_members = st.lists(st.tuples(st.sampled_from(["f", "d", "l", "h", "c", "p"]), _names,
                              st.one_of(_names, st.just("/"), st.just("../outside"))),
                    min_size=1, max_size=8)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_members)
def test_hostile_archives_never_write_outside(members: list[Member]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        box = Box(Path(tmp))
        os.symlink(box.outside, box.root / "escape")  # a pre-existing trap
        with contextlib.suppress(tarfile.TarError):
            box.extract(members)
        assert box.outside_untouched()
        real_root = os.path.realpath(box.root)
        for dirpath, dirnames, filenames in os.walk(box.root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                assert not name.endswith(".mo-sync-tmp")
                if os.path.islink(path) and name != "escape":
                    target = os.path.realpath(path)
                    assert target == real_root or target.startswith(real_root + os.sep), path
                else:
                    st_mode = os.lstat(path).st_mode
                    assert not (stat.S_ISCHR(st_mode) or stat.S_ISFIFO(st_mode))
