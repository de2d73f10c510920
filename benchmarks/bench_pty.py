"""Interactive commands (issue 16): keystroke echo latency through the session host.

One keystroke is written into a real pseudo-terminal and timed until its echo shows on it.
Baseline, in the same run: `cat` on a local terminal (the kernel's own echo). Measured:
`modal-offload exec -- cat` through the warm session host on the local backend: the local
terminal in raw mode, the byte relayed by the host into a remote terminal, echoed there and
written back to the local terminal. Target: the added latency (p50 minus the baseline's
p50) under 5 ms.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the repo on sys.path)
from _common import p50, p99, report
from bench_host import CLIENT, isolate

from tests.terminal import Terminal

KEYS = 200
GOAL_MS = 5.0


def echo_times(term: Terminal, keys: int) -> list[float]:
    out = []
    for i in range(keys):
        key = bytes([ord("a") + i % 26])
        start = time.perf_counter()
        term.send(key)
        term.expect(key, timeout=10)
        out.append(time.perf_counter() - start)
    return out


def measure(argv: list[str], ws: Path, ready: bytes, raw: bool) -> list[float]:
    with Terminal(argv, cwd=ws, env={**os.environ}) as term:
        deadline = time.monotonic() + 60
        while raw and term.stty() == term.before:  # typed before raw mode, it would echo here
            if time.monotonic() > deadline:
                raise SystemExit("the client never put the terminal in raw mode")
            time.sleep(0.01)
        term.send(ready + b"\r")
        term.expect(ready, timeout=60)  # the local echo of what we typed...
        term.expect(ready, timeout=60)  # ...and cat's own copy: the command runs
        times = echo_times(term, KEYS)
        term.send(b"\r\x04")
        term.wait()
        if term.stty() != term.before:
            raise SystemExit("the terminal was not restored")
        return times


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        isolate(Path(tmp))
        os.environ.update({"MODAL_OFFLOAD_BACKEND": "local", "MODAL_OFFLOAD_HOST": "1",
                           "TERM": "xterm-256color"})
        ws = Path(tmp) / "ws"
        ws.mkdir()
        (ws / ".modal-offload.toml").write_text("")
        base = measure(["cat"], ws, b"go", raw=False)
        hosted = measure([*CLIENT, "exec", "--no-sync-back", "--", "cat"], ws, b"go", raw=True)
        added = (p50(hosted) - p50(base)) * 1000
        report("keystroke echo, local terminal (baseline)",
               f"p50 {p50(base) * 1000:.3f} ms, p99 {p99(base) * 1000:.3f} ms")
        report("keystroke echo, exec through the host (local backend)",
               f"p50 {p50(hosted) * 1000:.3f} ms, p99 {p99(hosted) * 1000:.3f} ms")
        report("added echo latency", f"p50 {added:.3f} ms (goal < {GOAL_MS:g} ms): "
               + ("ok" if added < GOAL_MS else "OVER"))
        subprocess_stop()
    return 0


def subprocess_stop() -> None:
    import subprocess

    subprocess.run([*CLIENT, "host", "stop"], capture_output=True, check=False)


if __name__ == "__main__":
    sys.exit(main())
