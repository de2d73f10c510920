"""Where a command runs: the local-only rules and the explanation `modal-offload route` prints.

The same rules decide twice: at shim install time (a local-only name gets no shim at all, so
running it costs nothing extra) and in `route` (which also applies the run-time rules a shim
applies in pure sh: inside the remote, inside our own pipeline, outside the workspace).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from .config import Settings
from .localonly import command_name as command_name  # re-exported for route
from .localonly import runtime_rule, static_rule


@dataclass(frozen=True)
class Decision:
    command: str
    where: str  # "local" or "remote"
    rule: str  # stable id, e.g. "default-local-only:control-plane"
    why: str  # one human sentence

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def static_decision(command: str, settings: Settings) -> Decision:
    """The install-time rules: everything that does not depend on the running environment."""
    where, rule, why = static_rule(command, settings.local_only, settings.remote_always,
                                   settings.sources)
    return Decision(command, where, rule, why)


def decide(command: str, settings: Settings, *, in_workspace: bool = True,
           environ: Mapping[str, str] | None = None) -> Decision:
    """The full decision, including the run-time rules a shim applies."""
    runtime = runtime_rule(os.environ if environ is None else environ)
    if runtime is not None:
        return Decision(command, "local", *runtime)
    decision = static_decision(command, settings)
    if decision.where == "remote" and not in_workspace:
        return Decision(command, "local", "outside-workspace",
                        "the current folder is not inside a workspace, so nothing to sync")
    return decision


def is_shimmed(name: str, settings: Settings) -> bool:
    return static_decision(name, settings).where == "remote"
