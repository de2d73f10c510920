"""Compressed sync streams (issue 17 item 3): both directions through the real agent, the
rule for what gets compressed, and a hostile remote's zlib bombs stopping at the cap."""

from __future__ import annotations

import io
import os
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modal_offload.backends._base import Session
from modal_offload.errors import SyncError
from modal_offload.sync.client import WorkspaceSync
from modal_offload.sync.compress import FRAME, Deflater, Inflater
from modal_offload.sync.tarstream import ProtocolError, encode_header
from tests.sync.conftest import age_tree, snapshot, write_tree
from tests.sync.test_extract import make_tar
from tests.sync.test_fake_remote import FakeProcess, back


def framed(data: bytes) -> bytes:
    out: list[bytes] = []
    deflater = Deflater(out.append)
    deflater.write(data)
    deflater.flush()
    return b"".join(out)


def inflate_all(wire: bytes, piece: int = 777) -> bytes:
    """Inflate as a receiver does, from a source that hands over odd-sized pieces."""
    source = io.BytesIO(wire)

    class Source:
        def read(self, n: int = -1) -> bytes:
            return source.read(min(n, piece))

    reader, parts = Inflater(Source()), []
    while data := reader.read(4096):
        parts.append(data)
    return b"".join(parts)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=3000), st.integers(1, 400_000)), max_size=12))
def test_frames_round_trip_whatever_is_sent(pieces: list[bytes | int]) -> None:
    # Bytes as drawn, and runs of text (compressible) of a drawn length across frames.
    data = b"".join(p if isinstance(p, bytes) else (b"abc%d " % p * p)[:p] for p in pieces)
    assert inflate_all(framed(data)) == data


def test_text_shrinks_and_random_bytes_travel_as_they_are() -> None:
    text = b"".join(b"def f%d(x):\n    return x * %d\n" % (i, i) for i in range(40_000))
    assert len(framed(text)) < len(text) / 3
    noise = os.urandom(3 * FRAME)
    wire = framed(noise)
    # As it is but for a 4-byte header per frame: compressing noise never makes it grow.
    assert len(wire) == len(noise) + 4 * 3 and inflate_all(wire) == noise


def _collect_header(files: int) -> bytes:
    return encode_header({"op": "collect", "deleted": [], "files": files, "bytes": 0,
                          "over_cap": False, "compression": "zlib"})


def test_a_frame_that_inflates_past_its_limit_is_refused(workspace: Path,
                                                         tmp_path: Path) -> None:
    bomb = zlib.compress(bytes(64 << 20), 9)  # 64 MiB of zeros in ~64 KiB
    frame = (len(bomb) | 1 << 31).to_bytes(4, "big") + bomb
    with pytest.raises(ProtocolError, match="inflates beyond"):
        inflate_all(frame)
    tracemalloc.start()
    process = FakeProcess(_collect_header(1) + frame)
    with pytest.raises(SyncError) as err:
        back(workspace, tmp_path, process, max_bytes=1 << 20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "unusable stream" in err.value.one_line() and "inflates beyond" in err.value.one_line()
    assert os.listdir(workspace) == [] and b"ack" not in process.stdin
    assert peak < 8 << 20, f"peak {peak} bytes for a 64 MiB bomb"


def test_a_bomb_made_of_honest_frames_stops_at_the_cap(workspace: Path, tmp_path: Path) -> None:
    # A member whose header says 1 GiB, then zeros that compress ~1000x: the cap counts
    # what the archive inflates to, so it stops there, before anything is written.
    info = tarfile.TarInfo("huge.bin")
    info.size = 1 << 30
    head = info.tobuf(tarfile.PAX_FORMAT)
    out: list[bytes] = []
    deflater = Deflater(out.append)
    deflater.write(head)
    for _ in range(16):
        deflater.write(bytes(FRAME))
    deflater.flush()
    wire = b"".join(out)
    assert len(wire) < 100_000
    process = FakeProcess(_collect_header(1) + wire)
    with pytest.raises(SyncError) as err:
        back(workspace, tmp_path, process, max_bytes=1 << 20)
    assert "exceeds the cap" in err.value.one_line()
    assert os.listdir(workspace) == [] and b"ack" not in process.stdin
    # Under the cap, the same framing is an ordinary, accepted stream.
    ok = FakeProcess(_collect_header(1) + framed(make_tar([("f", "small.txt", "x" * 5000)])))
    report, _ = back(workspace, tmp_path, ok, max_bytes=1 << 20)
    assert report.applied == ["small.txt"]  # type: ignore[attr-defined]
    assert (workspace / "small.txt").read_text() == "x" * 5000


def test_an_unknown_compression_is_a_protocol_error(workspace: Path, tmp_path: Path) -> None:
    header = encode_header({"op": "collect", "deleted": [], "files": 1, "bytes": 0,
                            "over_cap": False, "compression": "zstd"})
    with pytest.raises(SyncError, match="unusable stream"):
        back(workspace, tmp_path, FakeProcess(header + make_tar([("f", "a", "1")])))
    assert os.listdir(workspace) == []


def test_both_directions_compress_through_the_real_agent(workspace: Path, session: Session,
                                                          tmp_path: Path) -> None:
    session.compress_sync = True  # as over a network (the Modal backend's default)
    source = "".join(f"line {i}: the same words again and again\n" for i in range(400))
    write_tree(workspace, {f"pkg/m{i}.py": source for i in range(30)})
    write_tree(workspace, {"data/noise.bin": os.urandom(300_000)})
    sync = WorkspaceSync(workspace, session, tmp_path / "cache")
    up = sync.up()
    raw = up.content_bytes + 512 * (up.files_sent + 2)
    assert up.bytes_sent < raw * 0.6, (up.bytes_sent, raw)  # text shrank, noise did not grow
    remote = Path(session.root)
    assert snapshot(remote) == snapshot(workspace)
    age_tree(remote)
    (remote / "pkg" / "new.py").write_text(source * 5)
    (remote / "pkg" / "m3.py").write_text("edited remotely\n" * 2000)
    down = sync.back()
    assert down.applied == ["pkg/m3.py", "pkg/new.py"]
    assert down.bytes_received < 20_000, down.bytes_received
    assert (workspace / "pkg" / "new.py").read_text() == source * 5
    assert snapshot(remote) == snapshot(workspace)


def test_the_local_backend_sends_plain_archives(workspace: Path, session: Session,
                                                tmp_path: Path) -> None:
    write_tree(workspace, {"a.txt": "same text " * 5000})
    up = WorkspaceSync(workspace, session, tmp_path / "cache").up()
    assert up.bytes_sent > 50_000  # a pipe on this machine: compressing only costs CPU


def test_inflater_reads_a_stream_that_ends_between_frames() -> None:
    assert inflate_all(framed(b"abc") + framed(b"def")) == b"abcdef"
    with pytest.raises(ProtocolError, match="inside a frame"):
        inflate_all(framed(b"x" * 5000)[:-3])
    assert Inflater(io.BytesIO(b"")).read(10) == b""
