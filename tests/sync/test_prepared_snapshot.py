"""A snapshot written aside while a first sync waits for the remote (journal.prepare):
it takes effect only through save(), only while still true, and never lingers."""

from __future__ import annotations

from pathlib import Path

import pytest

from modal_offload.sync.journal import ManifestStore
from modal_offload.sync.manifest import FILE, Entry, Manifest


def _manifest() -> Manifest:
    return Manifest({f"d/f{i}.txt": Entry(FILE, i, i * 10, 0o644, None, f"{i:032x}")
                     for i in range(50)}, 123)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("envelope", [None, {"session_id": "s1", "workspace": "/w"}])
def test_a_prepared_snapshot_is_what_save_writes(tmp_path: Path,
                                                 envelope: dict[str, str] | None) -> None:
    store = ManifestStore(tmp_path / "m.json", envelope, durable=True)
    manifest = _manifest()
    prepared = store.prepare(manifest)
    assert not (tmp_path / "m.json").exists()  # not in effect before save
    store.save(manifest, None, prepared)
    prepared.discard()
    assert _leftovers(tmp_path) == []
    loaded = ManifestStore(tmp_path / "m.json", envelope).load()
    assert loaded is not None and loaded.entries == manifest.entries
    assert loaded.scanned_at_ns == 123


def test_a_prepared_snapshot_gone_stale_is_not_used(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "m.json")
    manifest = _manifest()
    prepared = store.prepare(manifest)
    manifest.withheld = {"d/f1.txt"}  # the remote refused it meanwhile
    store.save(manifest, None, prepared)
    prepared.discard()
    assert _leftovers(tmp_path) == []
    loaded = ManifestStore(tmp_path / "m.json").load()
    assert loaded is not None and loaded.withheld == {"d/f1.txt"}


def test_a_prepared_snapshot_never_saved_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    store = ManifestStore(folder / "m.json")
    store.prepare(_manifest()).discard()  # the apply failed: no baseline at all
    assert list(folder.iterdir()) == []
    assert ManifestStore(folder / "m.json").load() is None
