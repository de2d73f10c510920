"""The wire format: header framing, streamed packing with bounded memory, round trips."""

from __future__ import annotations

import io
import os
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modal_offload.sync.extract import SafeExtractor
from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.manifest import diff, scan
from modal_offload.sync.tarstream import (
    ChunkReader,
    CountingWriter,
    ProtocolError,
    encode_header,
    pack,
    parse_header,
)
from tests.sync.conftest import snapshot, write_tree


def test_header_roundtrip_and_rejections() -> None:
    line = encode_header({"op": "apply", "deleted": ["a", "é\udcff"]})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_header(line)["deleted"] == ["a", "é\udcff"]
    for bad in (b'{"v": 99}\n', b"not json\n", b'{"v": 1}', b"[1]\n"):
        with pytest.raises(ProtocolError):
            parse_header(bad)


def test_chunk_reader_reads_what_is_at_hand() -> None:
    reader = ChunkReader(iter([b"hea", b"der\nta", b"r", b""]))
    assert reader.readline() == b"header\n"
    assert reader.read(100) == b"ta"  # does not wait to fill 100
    assert reader.read(100) == b"r"
    assert reader.read(100) == b""
    assert reader.bytes_read == 10
    assert ChunkReader(iter([b"x" * 10])).readline(limit=4) == b"xxxx"


def test_counting_writer_batches_and_counts() -> None:
    sent: list[bytes] = []
    w = CountingWriter(sent.append, chunk=10)
    for _ in range(7):
        w.write(b"abc")
    w.flush()
    assert b"".join(sent) == b"abc" * 7 and w.bytes_written == 21
    assert all(len(c) >= 10 for c in sent[:-1])


def test_pack_streams_with_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big.bin", "wb") as fh:
        for _ in range(40):
            fh.write(os.urandom(1 << 20))
    m = scan(src, IgnoreRules.load(src))
    total = 0

    def sink(data: bytes) -> None:
        nonlocal total
        total += len(data)

    tracemalloc.start()
    writer = CountingWriter(sink)
    stats = pack(src, ["big.bin"], m.entries, writer)
    writer.flush()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stats.content_bytes == 40 << 20 and total >= 40 << 20
    assert peak < 8 << 20, f"peak {peak} bytes while streaming a 40 MiB file"


def test_pack_skips_vanished_and_never_follows_a_swapped_symlink(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_tree(src, {"a": "1", "b": "2"})
    (tmp_path / "secret").write_text("outside")
    m = scan(src, IgnoreRules.load(src))
    (src / "a").unlink()
    (src / "b").unlink()
    os.symlink(tmp_path / "secret", src / "b")  # swapped after the scan
    buf = io.BytesIO()
    stats = pack(src, ["a", "b"], m.entries, buf)
    assert stats.vanished == 2 and stats.files == 0
    SafeExtractor(dst).extract(io.BytesIO(buf.getvalue()))
    assert snapshot(dst) == {}


_content = st.binary(max_size=3000)
_name = st.text(st.characters(codec="utf-8", exclude_characters="/\0",
                              exclude_categories=["Cs"]), min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and not s.endswith(".pyc") and s.strip() == s)


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.lists(_name, min_size=1, max_size=3).map("/".join),
                       st.tuples(_content, st.sampled_from([0o644, 0o600, 0o755])),
                       max_size=8))
def test_pack_then_extract_reproduces_the_tree(files: dict[str, tuple[bytes, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "src", Path(tmp) / "dst"
        src.mkdir()
        for rel, (data, mode) in files.items():
            path = src / rel
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                os.chmod(path, mode)
            except (FileExistsError, NotADirectoryError, IsADirectoryError, OSError):
                continue  # a name that is both a file and a folder in this draw
        rules = IgnoreRules.load(src)
        m = scan(src, rules)
        buf = io.BytesIO()
        pack(src, diff(None, m).changed, m.entries, buf)
        SafeExtractor(dst).extract(io.BytesIO(buf.getvalue()))
        assert scan(dst, IgnoreRules.load(dst)).entries.keys() == m.entries.keys()
        assert snapshot(dst) == {k: v for k, v in snapshot(src).items() if k in m.entries}
