"""Which agent-integration pieces an `agents` command acts on, in which order."""

from __future__ import annotations

from pathlib import Path

from .. import paths
from ..errors import BadInput
from . import hooks, policy, runner
from .agents_base import Item, prune_dirs

PARTS = ("runner", "policy", "hooks")


def select(root: Path | None, only: str | None, user: bool) -> list[Item]:
    """Install order: the runner first (hooks point at it), then policy, then hooks."""
    parts = PARTS if only is None else (only,)
    if only is not None and only not in PARTS:
        raise BadInput(f"unknown part {only!r}", f"use one of: {', '.join(PARTS)}")
    needs_workspace = not user and ("policy" in parts or "hooks" in parts)
    if root is None and needs_workspace:
        raise BadInput("not inside a workspace",
                       "cd into your project (a git repository or a folder with "
                       ".modal-offload.toml), or use --user for user-level hooks")
    out: list[Item] = []
    if "runner" in parts:
        out.append(Item("runner", "runner", runner.install, runner.check, runner.uninstall))
    if "policy" in parts:
        if root is not None:
            out += policy.workspace_items(root)
        out += policy.user_items(root)
    if "hooks" in parts:
        out += hooks.items(root, user)
    return out


def prune(root: Path | None) -> None:
    """Remove the folders our files needed, once empty (never the workspace or home)."""
    if root is not None:
        prune_dirs(policy.created_folders(root) + hooks.created_folders(root), stop=root)
    prune_dirs([paths.antigravity_user_dir(), paths.claude_user_dir(), paths.gemini_user_dir(),
                paths.codex_user_dir(), paths.cursor_user_dir(), paths.cline_user_hooks_dir()],
               stop=paths.home())
