"""Time to the local fallback when Modal is out of reach (issue 19), as ratios measured in the
same run: against `echo hi` run directly, and against `exec -- echo hi` without credentials
(the fallback users already knew). Before issue 19: 58 s refused, 16 s stalled.

Cases: credentials set and the server URL refusing connections (offline), or accepting and
never answering (stalled); in-process (MODAL_OFFLOAD_HOST=0) and through the session host,
whose circuit breaker answers every command after the first without checking again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import _common  # noqa: F401  (puts the repo on sys.path)
from _common import REPO, p50, report, timed

RUNS = 5
HOST_RUNS = 10


def main() -> None:
    cli = str(Path(REPO, ".venv", "bin", "modal-offload"))
    if not os.access(cli, os.X_OK):
        cli = "modal-offload"
    with tempfile.TemporaryDirectory(prefix="mo-bench-offline-") as tmp, \
            socket.socket() as refused, socket.socket() as stalled:
        home = Path(tmp, "home")
        ws = Path(tmp, "ws")
        home.mkdir()
        ws.mkdir()
        (ws / ".modal-offload.toml").write_text("")
        (home / ".run").mkdir(mode=0o700)
        refused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(64)  # the kernel accepts; nobody ever answers
        base = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
        base.update({"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                     "XDG_STATE_HOME": str(home / ".state"),
                     "XDG_CONFIG_HOME": str(home / ".cfg"), "XDG_RUNTIME_DIR": str(home / ".run"),
                     "MODAL_CONFIG_PATH": str(home / ".modal.toml"), "MODAL_OFFLOAD_HOST": "0"})
        creds = {"MODAL_TOKEN_ID": "ak-bench", "MODAL_TOKEN_SECRET": "as-bench"}

        def run(env: dict[str, str]) -> None:
            subprocess.run([cli, "exec", "--", "echo", "hi"], cwd=ws, env=env, check=True,
                           capture_output=True)

        direct = p50(timed(lambda: subprocess.run(["echo", "hi"], check=True,
                                                  capture_output=True), RUNS))
        no_creds = p50(timed(lambda: run(base), RUNS))
        report("fallback_without_credentials", f"p50 {no_creds * 1000:.0f} ms "
               f"({no_creds / direct:.0f}x `echo hi` alone, {direct * 1000:.1f} ms)")
        for label, sock in (("refused", refused), ("stalled", stalled)):
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            env = {**base, **creds, "MODAL_SERVER_URL": url}
            in_process = p50(timed(lambda env=env: run(env), RUNS))
            report(f"offline_fallback[{label}, in-process]",
                   f"p50 {in_process * 1000:.0f} ms = {in_process / no_creds:.1f}x the "
                   f"no-credentials fallback (deadline 1.5 s; was 58 s refused, 16 s stalled)")
            host_env = {**env, "MODAL_OFFLOAD_HOST": "1"}
            first = timed(lambda e=host_env: run(e), 1)[0]  # starts the host, opens the breaker
            rest = timed(lambda e=host_env: run(e), HOST_RUNS)
            report(f"offline_fallback[{label}, session host]",
                   f"first {first * 1000:.0f} ms, then p50 {p50(rest) * 1000:.0f} ms = "
                   f"{p50(rest) / no_creds:.1f}x the in-process no-credentials fallback "
                   f"({HOST_RUNS} commands: {sum(rest):.2f} s in total)")
            subprocess.run([cli, "host", "stop"], cwd=ws, env=host_env, capture_output=True)


if __name__ == "__main__":
    main()
