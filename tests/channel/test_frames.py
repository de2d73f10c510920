"""The channel's wire format: whatever is sent arrives whole and in order, however the
stream is cut; anything else is refused, never misread."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modal_offload.channel import frames

KIND = st.sampled_from(sorted(frames.KINDS))
FRAME = st.tuples(KIND, st.integers(0, (1 << 32) - 1), st.binary(max_size=300))


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(st.lists(FRAME, max_size=20), st.lists(st.integers(0, 10_000), max_size=30))
def test_frames_survive_any_cutting(sent: list[tuple[bytes, int, bytes]],
                                    points: list[int]) -> None:
    wire = b"".join(frames.encode(k, c, p) for k, c, p in sent)
    assert list(frames.read_frames(cut(wire, points))) == sent


@given(st.binary(max_size=300_000), st.integers(0, 99))
def test_data_is_split_and_joined_back(data: bytes, cid: int) -> None:
    got = list(frames.read_frames([frames.encode_data(frames.STDOUT, cid, data)]))
    assert b"".join(p for _, _, p in got) == data
    assert all(len(p) <= frames.DATA_CHUNK and c == cid for _, c, p in got)


@given(st.lists(FRAME, min_size=1, max_size=5), st.integers(1, 50))
def test_a_frame_cut_short_by_eof_is_dropped(sent: list[tuple[bytes, int, bytes]],
                                             short: int) -> None:
    wire = b"".join(frames.encode(k, c, p) for k, c, p in sent)
    got = list(frames.read_frames([wire[:-short]]))
    assert got == sent[:len(got)] and len(got) < len(sent)


@given(st.binary(min_size=1, max_size=1).filter(lambda b: b not in frames.KINDS),
       st.binary(max_size=20))
def test_garbage_is_refused(kind: bytes, rest: bytes) -> None:
    with pytest.raises(frames.FrameError):
        list(frames.read_frames([kind + b"\0" * 8 + rest]))


def test_oversized_length_is_refused() -> None:
    header = frames.HEADER.pack(frames.STDOUT, 1, frames.MAX_PAYLOAD + 1)
    with pytest.raises(frames.FrameError):
        list(frames.read_frames([header]))
    with pytest.raises(frames.FrameError):
        frames.encode(frames.STDOUT, 1, b"x" * (frames.MAX_PAYLOAD + 1))
