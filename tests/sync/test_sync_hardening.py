"""Issue 13, class 10 (sync): bounded tar metadata, no staging folder left for good."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from modal_offload.sync.extract import SafeExtractor
from modal_offload.sync.ignore import STAGING_PREFIX
from tests.helpers import cli, local_backend_env, make_workspace
from tests.host.helpers import wait_for


class CountingReader:
    """A stream that counts what the extractor pulled from it."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        out = self._buf.read(n)
        self.read_bytes += len(out)
        return out


def _tar_with_pax(record_bytes: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        info.pax_headers = {"comment": "x" * record_bytes}
        tar.addfile(info, io.BytesIO(b"a"))
    return buf.getvalue()


def test_an_oversized_pax_record_is_refused_before_it_is_read(tmp_path: Path) -> None:
    stream = CountingReader(_tar_with_pax(8 << 20))
    with pytest.raises(tarfile.TarError, match="metadata record"):
        SafeExtractor(tmp_path / "root", max_bytes=64 << 20).extract(stream)
    assert stream.read_bytes < 1 << 20  # the 8 MiB record was never pulled into memory
    assert os.listdir(tmp_path / "root") == []


def test_metadata_counts_against_the_size_cap(tmp_path: Path) -> None:
    ok = SafeExtractor(tmp_path / "a", max_bytes=1 << 20).extract(
        io.BytesIO(_tar_with_pax(30_000)))
    assert set(ok.installed) == {"a.txt"} and ok.metadata_bytes > 30_000
    from modal_offload.sync.extract import OverCap

    with pytest.raises(OverCap):
        SafeExtractor(tmp_path / "b", max_bytes=20_000).extract(io.BytesIO(_tar_with_pax(30_000)))


KILLED_MID_EXTRACT = """
import os, sys
from modal_offload.sync.extract import SafeExtractor
r, w = os.pipe()
os.write(w, b"")  # the stream never ends: the extractor blocks inside its staging folder
SafeExtractor(sys.argv[1]).extract(os.fdopen(r, "rb"))
"""


def test_a_killed_sync_back_leaves_no_staging_folder_for_good(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", files={"a.txt": "a"})
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_EXTRACT, str(ws)])
    try:
        assert wait_for(lambda: any(n.startswith(STAGING_PREFIX) for n in os.listdir(ws)))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (ws / ".modal-offload-staging-oldformat").mkdir()  # what older versions left behind
    out = cli("exec", "--", "true", cwd=ws, env=local_backend_env())
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(ws)) == [".modal-offload.toml", "a.txt"]


def test_a_live_runs_staging_folder_is_left_alone(tmp_path: Path) -> None:
    from modal_offload.sync.safety import make_staging, remove_stale_staging

    mine = make_staging(tmp_path)
    assert remove_stale_staging(tmp_path) == [] and os.path.isdir(mine)
