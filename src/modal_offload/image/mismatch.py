"""Telling an environment failure from a failure of the user's code (issue 12).

A remote run that dies with `ModuleNotFoundError` for a module this machine can import, or
with `command not found`, says nothing about the user's code: the image lacks something the
laptop has. `auto` mode then runs locally (one line says so) instead of charging minutes
for a failure that would not happen here.
"""

from __future__ import annotations

import importlib.util
import re

from ..errors import BackendError

_MODULE = re.compile(rb"ModuleNotFoundError: No module named '([A-Za-z0-9_.]+)'")
KEEP_BYTES = 64 * 1024


class EnvironmentMismatch(BackendError):
    """The remote image lacks something the local environment has."""


def missing_module(stderr: bytes) -> str | None:
    """The top-level module a remote traceback could not import, when it imports here."""
    found = _MODULE.findall(stderr[-KEEP_BYTES:])
    if not found:
        return None
    top = found[-1].decode().split(".")[0]
    try:
        local = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        local = False
    return top if local else None


def mismatch(stderr: bytes, what: str) -> EnvironmentMismatch | None:
    module = missing_module(stderr)
    if module is None:
        return None
    return EnvironmentMismatch(
        f"{what} failed remotely: the remote image lacks the Python module {module!r}, "
        "which is installed here",
        "declare it in requirements.txt / pyproject.toml, or add it to `[image] pip` in "
        ".modal-offload.toml (`modal-offload env check` compares both sides)")
