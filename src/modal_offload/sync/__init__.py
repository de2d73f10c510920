"""Workspace sync: manifest delta up before a remote command, safe apply back after.

Modules, one job each:
  ignore     git-style ignore rules (.gitignore, .modal-offloadignore, defaults)
  manifest   snapshots of a tree and the delta between two
  tarstream  the wire format (JSON header line + streamed tar) and stream adapters
  extract    safe, two-phase, atomic application of an archive and of deletions
  remote     the agent run remotely as `python -m modal_offload.sync.remote`
  channel    one run of that agent through `Session.exec`
  client     WorkspaceSync: up() and back()
  report     the plain dataclasses they return

Nothing heavy is imported here: the remote agent imports this package too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import WorkspaceSync
    from .report import Conflict, Refusal, SyncBackReport, SyncUpReport

__all__ = ["Conflict", "Refusal", "SyncBackReport", "SyncUpReport", "WorkspaceSync"]


def __getattr__(name: str) -> Any:
    if name == "WorkspaceSync":
        from .client import WorkspaceSync
        return WorkspaceSync
    if name in ("Conflict", "Refusal", "SyncBackReport", "SyncUpReport"):
        from . import report
        return getattr(report, name)
    raise AttributeError(name)
