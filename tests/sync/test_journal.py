"""The manifest journal (sync/journal.py): a crash at any byte of the journal loads the
manifest every complete record before it describes; replay is idempotent; a torn tail is
cut before the next append; records of a compacted-away generation are skipped."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from modal_offload.backends._base import Session
from modal_offload.sync.channel import state_dir
from modal_offload.sync.client import WorkspaceSync
from modal_offload.sync.journal import SMALL_BYTES, ManifestStore, replay
from modal_offload.sync.manifest import FILE, LINK, Entry, Manifest
from tests.sync.conftest import age_tree

PATHS = ["a", "b", "d/x", "d/y", "é/ü", "sp ace", "q\"uote", "new\\line"]
ENTRIES = [Entry(FILE, 1, 10, 0o644, None, "00" * 16), Entry(FILE, 2, 20, 0o755, None, "11" * 16),
           Entry(LINK, 3, 30, 0o777, "../t", None)]

# One update: per path, an entry index to put or None to delete; the scan time; the sets.
update = st.tuples(st.dictionaries(st.sampled_from(PATHS), st.none() | st.integers(0, 2)),
                   st.integers(0, 2**62), st.frozensets(st.sampled_from(PATHS), max_size=2),
                   st.frozensets(st.sampled_from(PATHS), max_size=2))
Update = tuple[dict[str, "int | None"], int, frozenset[str], frozenset[str]]


def applied(manifest: Manifest, u: Update) -> list[str]:
    """`manifest` changed in place by `u`; returns the paths it touched."""
    changes, at, withheld, resend = u
    for path, index in changes.items():
        if index is None:
            manifest.entries.pop(path, None)
        else:
            manifest.entries[path] = ENTRIES[index]
    manifest.scanned_at_ns, manifest.withheld, manifest.resend = at, set(withheld), set(resend)
    return list(changes)


def same(a: Manifest | None, b: Manifest) -> bool:
    return a is not None and (a.entries, a.scanned_at_ns, a.withheld, a.resend) == (
        b.entries, b.scanned_at_ns, b.withheld, b.resend)


def fresh(path: Path, compact_ratio: float = 1e12) -> ManifestStore:
    # Nothing counts as small; by default nothing is compacted: every save appends.
    return ManifestStore(path, {"who": "test"}, small_bytes=0, compact_ratio=compact_ratio)


@settings(max_examples=60, deadline=None)
@given(updates=st.lists(update, min_size=1, max_size=6), data=st.data(),
       ratio=st.sampled_from([1e12, 0.5, 2.0]))
def test_a_crash_at_any_byte_loads_the_complete_records(updates: list[Update],
                                                         data: st.DataObject,
                                                         ratio: float) -> None:
    """`ratio`: also with snapshots rewritten along the way (the journal then restarts)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.json"
        store = fresh(path, ratio)
        model = Manifest({"a": ENTRIES[0]}, 1)
        store.save(Manifest(dict(model.entries), 1))  # the snapshot
        states = [(0, Manifest(dict(model.entries), 1, set(), set()))]
        for u in updates:
            touched = applied(model, u)
            lent = store.load()
            assert same(lent, states[-1][1])  # what the store hands out is the saved state
            assert lent is not None
            applied(lent, u)
            store.save(lent, touched)
            size = store.journal.stat().st_size if store.journal.exists() else 0
            now = Manifest(dict(model.entries), model.scanned_at_ns, set(model.withheld),
                           set(model.resend))
            if size == 0:  # a new snapshot holds it all: the journal starts afresh
                states.clear()
            states.append((size, now))
        journal = store.journal.read_bytes() if store.journal.exists() else b""
        cut = data.draw(st.integers(0, len(journal)), label="crash at byte")
        store.journal.write_bytes(journal[:cut])
        expected = [m for size, m in states if size <= cut][-1]
        reader = fresh(path)
        loaded = reader.load()
        assert same(loaded, expected)
        # The next save after the crash starts on a clean line: nothing is glued to the
        # torn tail, and a later reader sees both.
        assert loaded is not None
        loaded.entries["after"] = ENTRIES[1]
        reader.save(loaded, ["after"])
        again = fresh(path).load()
        expected.entries["after"] = ENTRIES[1]
        assert same(again, expected)


@settings(max_examples=40, deadline=None)
@given(updates=st.lists(update, min_size=1, max_size=5))
def test_replaying_the_journal_twice_changes_nothing(updates: list[Update]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.json"
        store = fresh(path)
        manifest = Manifest({"b": ENTRIES[2]}, 1)
        store.save(manifest)
        for u in updates:
            lent = store.load()
            assert lent is not None
            store.save(lent, applied(lent, u))
        loaded = fresh(path).load()
        assert loaded is not None
        generation = store._generation
        journal = store.journal.read_bytes() if store.journal.exists() else b""
        twice = Manifest(dict(loaded.entries), loaded.scanned_at_ns, set(loaded.withheld),
                         set(loaded.resend))
        assert replay(twice, generation, journal) == len(journal)
        assert same(twice, loaded)


def test_a_corrupt_record_ends_the_journal_there(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    store = fresh(path)
    store.save(Manifest({"a": ENTRIES[0]}, 1))
    for name in ("b", "c"):
        lent = store.load()
        assert lent is not None
        lent.entries[name] = ENTRIES[1]
        store.save(lent, [name])
    data = bytearray(store.journal.read_bytes())
    first_end = data.index(b"\n")
    data[first_end + 20] ^= 0x01  # a flipped bit in the second record: its checksum fails
    store.journal.write_bytes(bytes(data))
    loaded = fresh(path).load()
    assert loaded is not None and set(loaded.entries) == {"a", "b"}


def test_compaction_and_a_crash_before_the_old_journal_went(tmp_path: Path) -> None:
    """A snapshot written but the old journal still there (a crash between the two): the
    old generation's records are not applied again over the newer snapshot."""
    path = tmp_path / "m.json"
    store = ManifestStore(path, None, small_bytes=0, compact_ratio=0.0)
    store.save(Manifest({"a": ENTRIES[0]}, 1))
    lent = store.load()
    assert lent is not None
    lent.entries["b"] = ENTRIES[1]
    store.save(lent, ["b"])  # appended: the journal was empty, not over 0 x snapshot
    old_journal = store.journal.read_bytes()
    assert old_journal
    lent = store.load()
    assert lent is not None
    del lent.entries["b"]
    store.save(lent, ["b"])  # the journal is now over the ratio: a new snapshot, no journal
    assert not store.journal.exists()
    store.journal.write_bytes(old_journal)  # as if the unlink never happened
    loaded = ManifestStore(path).load()
    assert loaded is not None and set(loaded.entries) == {"a"}
    # The bare snapshot is still a plain manifest file (the remote agent's format).
    assert set(Manifest.from_json(path.read_text()).entries) == {"a"}


def test_another_envelope_is_absent_and_a_lent_manifest_is_not_shared(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    store = ManifestStore(path, {"session_id": "one"})
    store.save(Manifest({"a": ENTRIES[0]}, 1))
    assert ManifestStore(path, {"session_id": "two"}).load() is None
    lent = store.load()
    assert lent is not None
    lent.entries["changed-but-not-saved"] = ENTRIES[1]
    # Not handed back: the next load reads the disk, not the changed object.
    again = store.load()
    assert again is not None and set(again.entries) == {"a"}
    store.keep(again)
    assert store.load() is again  # handed back unchanged: no read, no copy


def test_a_one_file_sync_appends_to_both_journals_and_rewrites_no_snapshot(
        session: Session, make_sync: Callable[..., WorkspaceSync], workspace: Path) -> None:
    """Past SMALL_BYTES of snapshot, an edit costs one journal record on each side: the
    snapshots stay the same files, and a fresh reader (another process) sees the edit."""
    for i in range(1200):
        (workspace / f"f{i:04d}.txt").write_text(str(i))
    age_tree(workspace)
    sync = make_sync(session)
    sync.up()
    remote_snapshot = Path(state_dir(session)) / "manifest.json"
    local_snapshot = sync.cache_path
    assert remote_snapshot.stat().st_size > SMALL_BYTES < local_snapshot.stat().st_size
    before = {p: p.stat() for p in (remote_snapshot, local_snapshot)}
    (workspace / "f0007.txt").write_text("edited")
    report = make_sync(session).up()
    assert report.files_sent == 1
    for path, was in before.items():
        now = path.stat()
        assert (now.st_ino, now.st_size, now.st_mtime_ns) == (
            was.st_ino, was.st_size, was.st_mtime_ns), path
        journal = path.with_name(path.name + ".journal")
        assert journal.read_bytes().count(b"\n") == 1, path
    remote = ManifestStore(remote_snapshot).load()
    local = make_sync(session).load_baseline()
    assert remote is not None and local is not None
    assert remote.entries["f0007.txt"].hash == local.entries["f0007.txt"].hash
    assert remote.entries["f0007.txt"].size == len("edited")
