"""Running a command here, in place of our process, without ever re-entering our shims."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import paths
from .localonly import BYPASS_MARKER as BYPASS_MARKER  # shims.py imports it from here
from .ui import notice


def path_without_shims(path: str) -> str:
    return os.pathsep.join(p for p in path.split(os.pathsep)
                           if p and Path(p).name != paths.SHIMS_DIRNAME)


def local_environment(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    env["PATH"] = path_without_shims(env.get("PATH", ""))
    env[BYPASS_MARKER] = "1"
    return env


def shell_argv(command: str) -> list[str]:
    return ["bash", "-c", command] if shutil.which("bash") else ["sh", "-c", command]


def exec_here(argv: Sequence[str]) -> int:
    """Replace this process with `argv` (exit code, signals and streams are then exact)."""
    env = local_environment(os.environ)
    try:
        os.execvpe(argv[0], list(argv), env)
    except FileNotFoundError:
        notice(f"{argv[0]}: command not found")
        return 127
    except PermissionError:
        notice(f"{argv[0]}: permission denied")
        return 126
    return 0  # not reached
