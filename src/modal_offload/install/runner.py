"""`~/.local/bin/modal-agent-runner`: the one door agents use for terminal commands.

A tiny sh script we own (marked), so it starts as fast as `sh` and keeps the gateway's
fidelity: it `exec`s the CLI, so stdin/stdout/stderr, signals and the exit code are the
gateway's own. Absolute paths are fixed at install time because agents run commands with
their own, often minimal, PATH.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from .. import isolated, paths
from . import owned
from .blocks import Status

USAGE = 'usage: modal-agent-runner -c "<raw command string>" | -- <binary> <args...>'
LIVE_PROBE = "modal-agent-runner-ok"


def interpreter() -> str:
    # Not resolved: a venv's python is a symlink whose target would lose the venv.
    return sys.executable


def cli_path() -> Path:
    return Path(sys.executable).parent / "modal-offload"


def script(cli: Path | None = None, python: str | None = None) -> str:
    cli = cli or cli_path()
    python = python or interpreter()
    # Not `-m`: the working folder is the agent's workspace (see `isolated`).
    fallback = '"$PY" ' + " ".join(
        shlex.quote(a) for a in isolated.argv("", isolated.package_dir(), "modal_offload")[1:])
    return f"""#!/bin/sh
# modal-agent-runner: runs an agent's terminal command through the modal-offload gateway,
# in the remote session of the workspace holding the current directory.
# {owned.MARKER} (written by `modal-offload agents install`; edits are overwritten)
#   modal-agent-runner -c "<raw command string>"
#   modal-agent-runner -- <binary> <args...>
# Exit code, stdout, stderr and stdin are the command's own; 125 means we could not run it.
CLI={shlex.quote(str(cli))}
PY={shlex.quote(python)}
case "${{1-}}" in
  -c) [ "$#" -eq 2 ] || {{ echo {shlex.quote(USAGE)} >&2; exit 125; }} ;;
  --) [ "$#" -ge 2 ] || {{ echo {shlex.quote(USAGE)} >&2; exit 125; }} ;;
  *) echo {shlex.quote(USAGE)} >&2; exit 125 ;;
esac
# -T: an agent never gets a remote terminal, even when it runs us inside one (issue 16).
if [ -x "$CLI" ]; then exec "$CLI" exec -T "$@"; fi
if [ -x "$PY" ]; then exec {fallback} exec -T "$@"; fi
echo "modal-agent-runner: modal-offload is gone ($CLI, $PY); reinstall it and run \
'modal-offload agents install'" >&2
exit 125
"""


def install() -> bool:
    return owned.write(paths.agent_runner_path(), script(), mode=0o755)


def check() -> tuple[Status, str]:
    path = paths.agent_runner_path()
    status = owned.check(path, script())
    if status is Status.OK and not (path.stat().st_mode & 0o111):
        return Status.DRIFTED, f"{path} is not executable"
    return status, str(path)


def uninstall() -> bool:
    return owned.remove(paths.agent_runner_path())


def live_check(cwd: Path, timeout: float = 300) -> tuple[Status, str]:
    """Really run `modal-agent-runner -c 'echo PROBE'` and compare output and exit code."""
    runner = paths.agent_runner_path()
    try:
        done = subprocess.run([str(runner), "-c", f"echo {LIVE_PROBE}"], cwd=cwd,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Status.DRIFTED, f"could not run {runner}: {exc}"
    out = done.stdout.decode(errors="replace")
    if done.returncode == 0 and out == LIVE_PROBE + "\n":
        return Status.OK, f"`{runner.name} -c 'echo {LIVE_PROBE}'` printed it and exited 0"
    err = done.stderr.decode(errors="replace").strip().splitlines()
    return Status.DRIFTED, (f"live run exited {done.returncode}, stdout {out.strip()[:80]!r}"
                            + (f", stderr: {err[-1][:160]}" if err else ""))
