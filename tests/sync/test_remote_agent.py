"""The remote agent as a real process: apply, collect, its manifest, the cap, failures."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.manifest import Manifest, diff, scan
from modal_offload.sync.tarstream import ChunkReader, encode_header, pack, parse_header
from tests.sync.conftest import age_tree, write_tree


def agent(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "modal_offload.sync.remote", *args],
                          input=stdin, capture_output=True, timeout=60)


def apply_stream(src: Path, previous: Manifest | None, full: bool) -> tuple[bytes, Manifest]:
    new = scan(src, IgnoreRules.load(src), previous)
    d = diff(previous, new)
    buf = io.BytesIO()
    buf.write(encode_header({"op": "apply", "full": full, "deleted": d.deleted,
                             "files": len(d.changed)}))
    if d.changed:
        pack(src, d.changed, new.entries, buf)
    return buf.getvalue(), new


def collect(root: Path, state: Path, max_bytes: int = 1 << 30,
            ack: bool = True) -> tuple[dict[str, object], list[str]]:
    proc = agent("collect", "--root", str(root), "--state", str(state),
                 "--max-bytes", str(max_bytes), stdin=b"ack\n" if ack else b"")
    assert proc.returncode == 0, proc.stderr
    reader = ChunkReader(iter([proc.stdout]))
    header = parse_header(reader.readline())
    names: list[str] = []
    if header.get("files"):
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            names = [m.name for m in tar]
    return header, names


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    src, root, state = tmp_path / "src", tmp_path / "remote", tmp_path / "state"
    src.mkdir()
    return src, root, state


def test_fresh_apply_establishes_the_baseline(dirs: tuple[Path, Path, Path]) -> None:
    src, root, state = dirs
    write_tree(src, {"a.py": "print(1)", "pkg/b.py": "x", "empty": None})
    stream, _ = apply_stream(src, None, full=True)
    proc = agent("apply", "--root", str(root), "--state", str(state), stdin=stream)
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout)
    assert reply["ok"] and reply["installed"] == 4
    assert (root / "pkg" / "b.py").read_text() == "x"
    stored = Manifest.from_json((state / "manifest.json").read_text())
    assert set(stored.entries) == {"a.py", "pkg", "pkg/b.py", "empty"}
    header, names = collect(root, state)
    assert header["files"] == 0 and header["deleted"] == [] and names == []


def test_apply_is_incremental_and_collect_reports_remote_changes(
        dirs: tuple[Path, Path, Path]) -> None:
    src, root, state = dirs
    write_tree(src, {"a": "1", "b": "2", "c": "3"})
    age_tree(src)
    stream, base = apply_stream(src, None, full=True)
    assert agent("apply", "--root", str(root), "--state", str(state), stdin=stream).returncode == 0
    first = Manifest.from_json((state / "manifest.json").read_text())
    (src / "a").write_text("changed")
    stream, _ = apply_stream(src, base, full=False)
    reply = agent("apply", "--root", str(root), "--state", str(state), stdin=stream)
    assert json.loads(reply.stdout)["installed"] == 1
    stored = Manifest.from_json((state / "manifest.json").read_text())
    assert stored.entries["b"] == first.entries["b"] and stored.entries["c"] == first.entries["c"]
    assert stored.entries["a"] != first.entries["a"]
    assert (root / "a").read_text() == "changed"
    # Remote-side work: new, modified, deleted, mode change.
    age_tree(root)
    (root / "gen.txt").write_text("generated")
    (root / "b").write_text("B!")
    (root / "c").unlink()
    os.chmod(root / "a", 0o700)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    header, names = collect(root, state)
    assert sorted(names) == ["a", "b", "gen.txt"]
    assert header["deleted"] == ["c"]
    header, names = collect(root, state)  # committed after the ack: nothing new
    assert names == [] and header["deleted"] == []


def test_collect_over_cap_sends_only_the_header_and_offers_again(
        dirs: tuple[Path, Path, Path]) -> None:
    _, root, state = dirs
    write_tree(root, {"big.bin": b"x" * 5000, "small": "s"})
    header, names = collect(root, state, max_bytes=1000)
    assert header["over_cap"] is True and names == []
    assert sorted(p for p, _ in header["skipped"]) == ["big.bin", "small"]  # type: ignore[attr-defined]
    assert header["bytes"] == 5001
    header, names = collect(root, state, max_bytes=10_000)  # offered again
    assert sorted(names) == ["big.bin", "small"]


def test_collect_without_ack_commits_nothing(dirs: tuple[Path, Path, Path]) -> None:
    _, root, state = dirs
    write_tree(root, {"new": "n"})
    _, names = collect(root, state, ack=False)
    assert names == ["new"]
    _, names = collect(root, state)
    assert names == ["new"]


def test_bad_input_fails_with_a_message(dirs: tuple[Path, Path, Path]) -> None:
    _, root, state = dirs
    proc = agent("apply", "--root", str(root), "--state", str(state), stdin=b"garbage\n")
    assert proc.returncode == 2 and b"protocol error" in proc.stderr
    proc = agent("apply", "--root", str(root), "--state", str(state),
                 stdin=encode_header({"op": "apply", "files": 1, "deleted": []}) + b"\0" * 7)
    assert proc.returncode != 0


def test_agent_imports_stay_light() -> None:
    code = ("import sys, modal_offload.sync.remote; "
            "print(sorted(m for m in ('rich', 'filelock', 'platformdirs', 'modal') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
