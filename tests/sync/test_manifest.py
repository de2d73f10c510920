"""Manifest: scanning real trees, hashing only when needed, diff properties, JSON."""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.manifest import (
    DIR,
    FILE,
    LINK,
    Entry,
    Manifest,
    apply_delta,
    diff,
    entry_from_list,
    forget,
    same_content,
    scan,
    scan_with_stats,
)
from tests.sync.conftest import age, age_tree, write_tree


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "tree"
    path.mkdir()
    return path


def rescan(root: Path, previous: Manifest | None = None) -> Manifest:
    return scan(root, IgnoreRules.load(root), previous)


def test_scan_records_types_modes_targets_and_hashes(root: Path) -> None:
    write_tree(root, {"a.txt": "hello", "d/b.bin": b"\0\1", "empty": None})
    os.chmod(root / "a.txt", 0o750)
    os.symlink("a.txt", root / "link")
    os.mkfifo(root / "fifo")
    m = rescan(root)
    assert set(m.entries) == {"a.txt", "d", "d/b.bin", "empty", "link"}  # no fifo
    a = m.entries["a.txt"]
    assert (a.type, a.size, a.mode) == (FILE, 5, 0o750) and a.hash and len(a.hash) == 32
    assert m.entries["link"].type == LINK and m.entries["link"].target == "a.txt"
    assert m.entries["d"].type == DIR and m.entries["empty"].type == DIR


def test_hash_reused_when_size_and_mtime_match(root: Path) -> None:
    write_tree(root, {f"f{i}": f"{i}" for i in range(20)})
    age_tree(root)
    first, stats1 = scan_with_stats(root, IgnoreRules.load(root))
    assert stats1.hashed == 20
    _, stats2 = scan_with_stats(root, IgnoreRules.load(root), first)
    assert stats2.hashed == 0


def test_touched_identical_file_is_not_a_change(root: Path) -> None:
    write_tree(root, {"a": "same", "b": "other"})
    age_tree(root)
    old = rescan(root)
    os.utime(root / "a")  # mtime now: content unchanged
    new, stats = scan_with_stats(root, IgnoreRules.load(root), old)
    assert stats.hashed == 1  # re-read because mtime moved...
    assert diff(old, new).empty  # ...but not sent


def test_mode_change_is_a_change(root: Path) -> None:
    write_tree(root, {"run.sh": "echo"})
    age_tree(root)
    old = rescan(root)
    os.chmod(root / "run.sh", 0o755)
    assert diff(old, rescan(root, old)).changed == ["run.sh"]


def test_same_size_edit_with_new_mtime_is_caught(root: Path) -> None:
    # What a branch switch does: same length, different bytes, fresh mtime.
    write_tree(root, {"cfg.py": "A = 1\n"})
    age_tree(root)
    old = rescan(root)
    (root / "cfg.py").write_text("A = 2\n")
    assert diff(old, rescan(root, old)).changed == ["cfg.py"]


def test_edit_in_the_same_clock_tick_as_the_scan_is_caught(root: Path) -> None:
    # mtime within the racy window of the snapshot: re-hashed even if size+mtime match.
    write_tree(root, {"cfg.py": "A = 1\n"})
    old = rescan(root)
    st = (root / "cfg.py").stat()
    (root / "cfg.py").write_text("A = 2\n")
    os.utime(root / "cfg.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert diff(old, rescan(root, old)).changed == ["cfg.py"]


def test_documented_limit_same_size_and_same_old_mtime_is_not_seen(root: Path) -> None:
    # Git has the same limit: a rewrite that forges size and an old mtime is trusted.
    write_tree(root, {"cfg.py": "A = 1\n"})
    age(root / "cfg.py")
    old = rescan(root)
    st = (root / "cfg.py").stat()
    (root / "cfg.py").write_text("A = 2\n")
    os.utime(root / "cfg.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert diff(old, rescan(root, old)).empty


def test_type_changes_and_deletions(root: Path) -> None:
    write_tree(root, {"x/inner": "1", "y": "2", "z": "3"})
    age_tree(root)
    old = rescan(root)
    (root / "x" / "inner").unlink()
    (root / "x").rmdir()
    (root / "x").write_text("now a file")
    (root / "y").unlink()
    os.symlink("z", root / "y")
    d = diff(old, rescan(root, old))
    assert d.changed == ["x", "y"] and d.deleted == ["x/inner"]


def test_json_roundtrip_and_version(root: Path) -> None:
    write_tree(root, {"a": "1", "b/c": "2", "é ü/名前.txt": "3"})
    os.symlink("b/c", root / "l")
    m = rescan(root)
    back = Manifest.from_json(m.to_json())
    assert back == m
    assert '"version":1' in m.to_json()
    with pytest.raises(ValueError):
        Manifest.from_json('{"version": 99, "entries": {}}')
    with pytest.raises(ValueError):
        Manifest.from_json('{"version": 1, "entries": {"a": [1, 2, 3, 4, 5, 6, 7, 8]}}')


def test_forget_drops_descendants_only() -> None:
    e = Entry(FILE, 1, 1, 0o644, None, "h")
    entries = {"a": e, "a/b": e, "a/b/c": e, "ab": e, "x/a": e}
    forget(entries, ["a"])
    assert set(entries) == {"ab", "x/a"}


@pytest.fixture
def fast_root(root: Path) -> Iterator[Path]:
    """Creating files on this VM's disk costs ~1 ms each (scanning them does not): build
    the big tree on tmpfs when there is one, so the test stays quick."""
    if not os.access("/dev/shm", os.W_OK):
        yield root
        return
    path = Path(tempfile.mkdtemp(prefix="mo-sync-test-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_scan_of_10k_files_is_fast(fast_root: Path) -> None:
    root = fast_root
    for a in range(20):
        for b in range(25):
            d = root / f"pkg{a}" / f"mod{b}"
            d.mkdir(parents=True)
            for c in range(20):
                (d / f"f{c}.py").write_text(f"x = {c}\n")
    age_tree(root)
    previous = scan(root, IgnoreRules.load(root))
    assert len(previous.entries) == 10_520
    best = min(_timed(lambda: scan(root, IgnoreRules.load(root), previous)) for _ in range(7))
    # The bar is 100 ms on an idle machine; when other work loads it, compare with the
    # floor any scanner pays on the same tree at the same moment (scandir + lstat).
    floor = min(_timed(lambda: _bare_walk(str(root))) for _ in range(7))
    assert best < 0.1 or best < 2.5 * floor, \
        f"warm scan of 10k files: {best * 1000:.0f} ms (bare walk {floor * 1000:.0f} ms)"


def _bare_walk(top: str) -> int:
    count, stack = 0, [top]
    while stack:
        with os.scandir(stack.pop()) as it:
            for de in it:
                count += 1
                if stat.S_ISDIR(de.stat(follow_symlinks=False).st_mode):
                    stack.append(de.path)
    return count


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


# ------------------------------------------------------------- diff properties
_names = st.sampled_from(["a", "b", "c", "d/e", "d/f", "g/h/i", "j", "k"])
_entries = st.builds(
    Entry, st.sampled_from([FILE, FILE, FILE, LINK, DIR]), st.integers(0, 3),
    st.integers(0, 3), st.sampled_from([0o644, 0o755]),
    st.sampled_from([None, "t1", "t2"]), st.sampled_from([None, "h1", "h2"]))
_manifests = st.dictionaries(_names, _entries).map(lambda d: Manifest(dict(d)))


@st.composite
def _evolutions(draw: st.DrawFn) -> tuple[Manifest, Manifest, set[str]]:
    """(old, new, touched): new derives from old by edits, deletions, additions and
    mtime-only touches (the `touched` set)."""
    old = draw(_manifests)
    new = dict(old.entries)
    touched: set[str] = set()
    for path, entry in old.entries.items():
        op = draw(st.sampled_from(["keep", "touch", "delete", "edit"]))
        if op == "touch":
            new[path] = entry._replace(mtime_ns=entry.mtime_ns + 1)
            touched.add(path)
        elif op == "delete":
            del new[path]
        elif op == "edit":
            new[path] = draw(_entries)
    for path, entry in draw(st.dictionaries(_names, _entries)).items():
        if path not in old.entries:
            new[path] = entry
    return old, Manifest(new), touched


@settings(max_examples=200, deadline=None)
@given(_evolutions())
def test_applying_the_diff_to_old_yields_new(case: tuple[Manifest, Manifest, set[str]]) -> None:
    old, new, touched = case
    d = diff(old, new)
    got = apply_delta(old, d, new)
    assert set(got.entries) == set(new.entries)
    assert all(same_content(got.entries[p], new.entries[p]) for p in new.entries)
    assert not touched & set(d.changed)  # touched-but-identical never travels
    assert set(d.deleted) == set(old.entries) - set(new.entries)
    assert d.changed == sorted(d.changed) and d.deleted == sorted(d.deleted, reverse=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["w", "t", "rm", "chmod"]),
                          st.sampled_from(["a", "b", "sub/c", "sub/d"]),
                          st.binary(max_size=8)), max_size=12))
def test_real_file_edits_are_seen_and_touches_are_not(
        tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str, bytes]]) -> None:
    root = tmp_path_factory.mktemp("prop")
    write_tree(root, {"a": b"1", "b": b"22", "sub/c": b"333"})
    age_tree(root)
    old = rescan(root)
    for op, rel, data in ops:
        path = root / rel
        if op == "w":
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
        elif op == "t" and path.exists():
            os.utime(path)
        elif op == "rm" and path.exists():
            path.unlink()
        elif op == "chmod" and path.exists():
            os.chmod(path, path.stat().st_mode ^ 0o100)
    new = rescan(root, old)
    d = diff(old, new)
    truth = rescan(root)  # fresh hashes, no reuse
    for p in set(old.entries) | set(truth.entries):
        really = p not in old.entries or p not in truth.entries or not same_content(
            old.entries[p], truth.entries[p])
        assert (p in d.changed or p in d.deleted) == really, p


def test_withheld_and_resend_survive_the_cache_and_copies() -> None:
    m = Manifest({"a": Entry(FILE, 1, 1, 0o644, hash="h")}, 5, {"a"}, {"b"})
    back = Manifest.from_json(m.to_json())
    assert (back.withheld, back.resend) == ({"a"}, {"b"})
    dup = m.copy()
    dup.withheld.clear()
    dup.entries.clear()
    assert m.withheld == {"a"} and "a" in m.entries
    with pytest.raises(ValueError):
        Manifest.from_dict({**m.to_dict(), "withheld": "a"})


_texts = st.one_of(st.none(), st.text(max_size=40),
                   # lone surrogates: surrogateescape's (U+DC80-DCFF) and any other
                   st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
                           | st.characters(max_codepoint=0x7F), max_size=8),
                   st.binary(max_size=16).map(lambda b: b.hex()),
                   st.binary(min_size=16, max_size=16).map(lambda b: b.hex().upper()))
_int64 = st.integers(-(1 << 63), (1 << 63) - 1)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([FILE, DIR, LINK]), _int64, _int64, st.integers(0, 0xFFFF), _texts,
       _texts)
def test_an_entry_gives_back_every_field_it_was_made_with(
        kind: str, size: int, mtime_ns: int, mode: int, target: str | None,
        digest: str | None) -> None:
    """Packed (issue 21, host memory) yet read like the named tuple it was: the fields,
    the JSON list, pickling and equality exactly when the fields are equal."""
    fields = (kind, size, mtime_ns, mode, target, digest)
    entry = Entry(*fields)
    assert (entry.type, entry.size, entry.mtime_ns, entry.mode, entry.target,
            entry.hash) == fields
    assert list(entry) == list(fields) and entry.fields() == fields and entry[3] == mode
    assert entry_from_list(list(entry)) == entry and hash(Entry(*fields)) == hash(entry)
    assert pickle.loads(pickle.dumps(entry)) == entry
    assert entry._replace(mtime_ns=mtime_ns ^ 1) != entry
    assert same_content(entry._replace(mtime_ns=mtime_ns ^ 1), entry)
    if digest is not None:
        assert Entry(kind, size, mtime_ns, mode, target, digest + "0") != entry
    if target is not None:
        assert Entry(kind, size, mtime_ns, mode, target + "x", digest) != entry


@pytest.mark.parametrize("raw", [
    ["x", 0, 0, 0], ["f", 0, 0, -1], ["f", 0, 0, 1 << 16], ["f", 1 << 63, 0, 0],
    ["f", "1", 0, 0], ["f", 0, 0.5, 0], ["f", 0, 0, 0, None, 5], ["f", 0, 0, 0, 7],
    ["f", 0, 0], ["f", 0, 0, 0, None, None, "extra"], {"type": "f"}, "f000"])
def test_a_malformed_entry_makes_the_manifest_unreadable(raw: object) -> None:
    """What our own writer never writes is refused as a whole (the baseline is then
    treated as absent: a full sync), never kept as a half-understood entry."""
    with pytest.raises(ValueError, match="bad manifest entry"):
        Manifest.from_dict({"version": 1, "entries": {"a": raw}})


def test_a_hashed_file_entry_is_one_small_object() -> None:
    """What the memory goal stands on: a 100k-file session's entries in ~7 MB, not ~22."""
    entry = Entry(FILE, 1234, time.time_ns(), 0o644, None, "0123456789abcdef" * 2)
    assert sys.getsizeof(entry) <= 100


@settings(max_examples=200, deadline=None)
@given(_int64, _int64, st.integers(0, 0o777), st.binary(min_size=0, max_size=20))
def test_an_entry_from_a_raw_digest_is_the_entry_from_its_hex(
        size: int, mtime_ns: int, mode: int, digest: bytes) -> None:
    """The packer and the extractor hand over hasher.digest() (no hex made and parsed):
    the same entry as from the hex text, whatever the digest's length."""
    expected = Entry(FILE, size, mtime_ns, mode, None, digest.hex())
    assert Entry.hashed_file(size, mtime_ns, mode, digest) == expected
    assert Entry(FILE, size, mtime_ns, mode).with_digest(digest) == expected
    link = Entry(LINK, size, mtime_ns, mode, "target")
    assert link.with_digest(digest) == Entry(LINK, size, mtime_ns, mode, "target", digest.hex())
