"""`modal-offload agents install|check|uninstall [--only runner|policy|hooks] [--user]`.

install: the runner, the policy and its mirrors, the enforcement hooks (merged into each
agent's settings, never overwriting them). check: one line per item, non-zero on any
problem (`--live` also runs the runner for real). uninstall: every file back as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import workspace
from ..errors import OffloadError
from ..install import agents, hook_live, hooks, runner
from ..install.agents_base import Item
from ..install.blocks import Status


def _root() -> Path | None:
    ws = workspace.find()
    return ws.root if ws is not None else None


def _each(items: list[Item], verb: str) -> int:
    failed = 0
    for item in items:
        try:
            changed = item.install() if verb == "install" else item.uninstall()
        except OffloadError as exc:
            print(f"error    {item.name}: {exc.one_line()}")
            failed = failed or exc.exit_code
            continue
        done = "installed" if verb == "install" else "removed"
        print(f"{done if changed else 'unchanged':<9} {item.name}")
    return failed


def install(user: bool = False, only: str | None = None) -> int:
    root = _root()
    code = _each(agents.select(root, only, user), "install")
    if only in (None, "hooks"):
        for step in hooks.next_steps(root, user):
            print(f"to do    {step}")
    return code


def uninstall(user: bool = False, only: str | None = None) -> int:
    root = _root()
    code = _each(list(reversed(agents.select(root, only, user))), "uninstall")
    agents.prune(root)
    return code


def check(user: bool = False, only: str | None = None, live: bool = False) -> int:
    root = _root()
    problems = 0
    for item in agents.select(root, only, user):
        try:
            status, detail = item.check()
        except OffloadError as exc:
            status, detail = Status.FOREIGN, exc.one_line()
        problems += status not in (Status.OK, Status.UNVERIFIED)
        print(f"{status.value:<9} {item.name}" + (f"  ({detail})" if detail else ""))
    if live and only in (None, "runner"):
        status, detail = runner.live_check(root or Path(os.getcwd()))
        problems += status is not Status.OK
        print(f"{status.value:<9} runner live  ({detail})")
    if live and only in (None, "hooks"):
        for agent, path in hooks.live_targets(root, user):
            status, detail = hook_live.check(agent, path, root or Path(os.getcwd()))
            problems += status is not Status.OK
            print(f"{status.value:<9} {agent} hook live  ({detail})")
    return 1 if problems else 0
