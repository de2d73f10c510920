"""Issue 19: with credentials set and Modal out of reach, `auto` runs the command here within
the reachability deadline (it took 58 s, then failed with 125), and forced modes fail fast
with their documented exit codes. The real CLI, in-process path (MODAL_OFFLOAD_HOST=0)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modal_offload.errors import BACKEND_EXIT, EXEC_FAILURE_EXIT
from tests.helpers import cli, make_workspace

# The bug took 58 s (refused) and 16 s (stalled); the check's deadline is 1.5 s by default.
# A generous bound, so a slow CI machine does not flake, that the old behaviour cannot meet.
BOUND_SECONDS = 10.0
CREDENTIALS = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_TOKEN_ID": "ak-offline",
               "MODAL_TOKEN_SECRET": "as-offline"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def refused_url() -> str:
    """A local port nobody listens on: connecting is refused, as when offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def stalled_url() -> Iterator[str]:
    """A server that accepts (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def timed_exec(ws: Path, url: str, *args: str,
               extra: dict[str, str] | None = None) -> tuple[float, int, bytes, bytes]:
    env = {**CREDENTIALS, "MODAL_SERVER_URL": url, **(extra or {})}
    start = time.monotonic()
    out = cli(*args, cwd=ws, env=env, timeout=120)
    return time.monotonic() - start, out.returncode, out.stdout, out.stderr


def test_refused_runs_locally_at_once_and_says_so_once(ws: Path, refused_url: str) -> None:
    elapsed, code, out, err = timed_exec(ws, refused_url, "exec", "--", "echo", "hi")
    assert (code, out) == (0, b"hi\n"), err
    assert err.count(b"\n") == 1 and b"running locally: Modal is unreachable" in err
    assert b"connection refused" in err
    assert elapsed < BOUND_SECONDS
    # The next commands say nothing more (once an hour, like missing credentials).
    elapsed, code, out, err = timed_exec(ws, refused_url, "exec", "-c", "echo again; exit 3")
    assert (code, out, err) == (3, b"again\n", b"")


def test_stalled_server_runs_locally_after_the_deadline(ws: Path, stalled_url: str) -> None:
    elapsed, code, out, err = timed_exec(ws, stalled_url, "exec", "--", "echo", "hi",
                                         extra={"MODAL_OFFLOAD_REACH_TIMEOUT": "1"})
    assert (code, out) == (0, b"hi\n"), err
    assert b"running locally: Modal is unreachable" in err and b"no answer within 1s" in err
    assert elapsed < BOUND_SECONDS


def test_forced_backend_fails_fast_with_one_line(ws: Path, refused_url: str,
                                                 stalled_url: str) -> None:
    for url in (refused_url, stalled_url):
        elapsed, code, out, err = timed_exec(ws, url, "exec", "--backend", "modal", "--",
                                             "echo", "hi")
        assert (code, out) == (EXEC_FAILURE_EXIT, b""), err
        assert err.startswith(b"modal-offload: Modal is unreachable (") and err.count(b"\n") == 1
        assert elapsed < BOUND_SECONDS


def test_refuse_policy_refuses_instead_of_running_here(ws: Path, refused_url: str) -> None:
    _, code, out, err = timed_exec(ws, refused_url, "exec", "--", "echo", "hi",
                                   extra={"MODAL_OFFLOAD_WHEN_NO_BUDGET": "refuse"})
    assert (code, out) == (EXEC_FAILURE_EXIT, b"") and b"Modal is unreachable" in err


def test_heavy_auto_falls_back_and_modal_mode_exits_4(ws: Path, refused_url: str) -> None:
    (ws / "primary_compute.py").write_text(
        "def do_heavy_stuff(payload):\n    return {'n': payload['iterations'] * 2}\n")
    elapsed, code, out, err = timed_exec(ws, refused_url, "heavy", "--mode", "auto",
                                         "--payload", '{"iterations": 21}')
    assert code == 0 and b'"n": 42' in out and b'"execution": "local"' in out, err
    assert b"running locally: Modal is unreachable" in err and elapsed < BOUND_SECONDS
    elapsed, code, out, err = timed_exec(ws, refused_url, "heavy", "--mode", "modal",
                                         "--payload", '{"iterations": 21}')
    assert (code, out) == (BACKEND_EXIT, b"") and b"Modal is unreachable" in err
    assert elapsed < BOUND_SECONDS
