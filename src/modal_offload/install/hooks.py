"""Enforcement hooks in each agent's own configuration, pointing at `modal_offload.hooks`.

Our entries are recognised by the module name in their command string, so check and
uninstall touch only ours and keep every other tool's hooks. The command ends in
`|| exit 2`: if the interpreter itself is gone, the shell's failure still blocks
(exit 2 means "block" to Claude, Codex, Gemini and Cursor), instead of letting it through.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from .. import isolated, paths
from . import hook_trust, owned
from .agents_base import Item
from .blocks import Status
from .jsonfile import JsonSpec
from .jsonfile import check as json_check
from .jsonfile import install as json_install
from .jsonfile import uninstall as json_uninstall
from .runner import interpreter

MARK = "modal_offload.hooks"
HOOK_AGENTS = ("claude", "gemini", "codex", "cursor", "cline")
TIMEOUT_S = 30


def hook_command(agent: str, block_only: bool = False) -> str:
    # Isolated: agents run hooks in the workspace, whose `json.py` must not run (issue 13).
    argv = isolated.argv(interpreter(), isolated.package_dir(), MARK, agent,
                         "--runner", str(paths.agent_runner_path()))
    if block_only:
        argv.append("--block-only")
    return " ".join(shlex.quote(a) for a in argv) + " || exit 2"


def _is_ours(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    if MARK in str(entry.get("command", "")):
        return True
    inner = entry.get("hooks")
    return isinstance(inner, list) and any(
        isinstance(h, dict) and MARK in str(h.get("command", "")) for h in inner)


def spec(agent: str, base: Path) -> JsonSpec:
    """Our hook entry in `base`, the agent's settings file (see `settings_path`)."""
    command = hook_command(agent)
    if agent == "claude":
        # onFailure "block": a hook that times out or crashes refuses the call (2.1.332; older
        # releases ignore the key and fail open on a timeout: docs/agent-hooks.md).
        entry = {"matcher": "Bash",
                 "hooks": [{"type": "command", "command": command, "timeout": TIMEOUT_S,
                            "onFailure": "block"}]}
        return JsonSpec(base, items=((("hooks", "PreToolUse"), entry),), ours=_is_ours)
    if agent == "codex":
        entry = {"matcher": "^Bash$",
                 "hooks": [{"type": "command", "command": command, "timeout": TIMEOUT_S}]}
        return JsonSpec(base, items=((("hooks", "PreToolUse"), entry),), ours=_is_ours)
    if agent == "gemini":
        entry = {"matcher": "run_shell_command",
                 "hooks": [{"name": "modal-offload", "type": "command", "command": command,
                            "timeout": TIMEOUT_S * 1000}]}  # Gemini counts milliseconds
        return JsonSpec(base, values={("hooksConfig", "enabled"): True},
                        items=((("hooks", "BeforeTool"), entry),), ours=_is_ours)
    if agent == "cursor":
        flat: dict[str, Any] = {"command": command, "timeout": TIMEOUT_S, "failClosed": True}
        return JsonSpec(base, values={("version",): 1},
                        items=((("hooks", "beforeShellExecution"), flat),), ours=_is_ours)
    raise ValueError(agent)


def settings_path(agent: str, root: Path | None, user: bool) -> Path:
    if user:
        folder = {"claude": paths.claude_user_dir(), "gemini": paths.gemini_user_dir(),
                  "codex": paths.codex_user_dir(), "cursor": paths.cursor_user_dir()}[agent]
    else:
        assert root is not None
        folder = root / f".{agent}"
    name = {"claude": "settings.json", "gemini": "settings.json", "codex": "hooks.json",
            "cursor": "hooks.json"}[agent]
    return folder / name


def cline_script() -> str:
    fallback = ('{"cancel": true, "errorMessage": "modal-offload hook could not run; '
                'command blocked. Run: modal-offload agents install"}')
    return f"""#!/bin/sh
# {owned.MARKER} (written by `modal-offload agents install`)
# Cline PreToolUse hook: terminal commands must go through modal-agent-runner.
{hook_command("cline")[:-len(" || exit 2")]} && exit 0
echo '{fallback}'
"""


def cline_path(root: Path | None, user: bool) -> Path | None:
    if user:
        return paths.cline_user_hooks_dir() / "PreToolUse"
    assert root is not None
    if (root / ".clinerules").is_file():
        return None  # the file form cannot hold hooks; see docs/agent-hooks.md
    return root / ".clinerules" / "hooks" / "PreToolUse"


def _cline_item(root: Path | None, user: bool) -> Item:
    def check() -> tuple[Status, str]:
        path = cline_path(root, user)
        if path is None:
            return Status.FOREIGN, (".clinerules is a file: Cline project hooks need the "
                                    "folder form; move its rules into .clinerules/ or use "
                                    "--user")
        return owned.check(path, cline_script()), str(path)

    def install() -> bool:
        path = cline_path(root, user)
        return path is not None and owned.write(path, cline_script(), mode=0o755)

    def uninstall() -> bool:
        path = cline_path(root, user)
        return path is not None and owned.remove(path)

    return Item("hooks", "cline hook", install, check, uninstall)


def _check(agent: str, spec_of: Any, root: Path | None, user: bool) -> tuple[Status, str]:
    """The file check, then what the tool itself needs before it runs the hook."""
    status, detail = json_check(spec_of())
    if status is not Status.OK:
        return status, detail
    if agent == "codex":
        return hook_trust.codex(spec_of().path, None if user else root)
    if agent == "gemini" and not user and root is not None:
        return hook_trust.gemini(root)
    if agent == "cursor":
        return Status.UNVERIFIED, ("Cursor's CLI is not on npm, so this hook is not tested "
                                   "against the real tool")
    return status, detail


def items(root: Path | None, user: bool) -> list[Item]:
    out = []
    for agent in ("claude", "gemini", "codex", "cursor"):
        path = settings_path(agent, root, user)
        label = f"{agent} hook {path if user else path.relative_to(root or path)}"

        def get(agent: str = agent, path: Path = path) -> JsonSpec:
            return spec(agent, path)

        out.append(Item("hooks", label, lambda get=get: json_install(get()),  # type: ignore[misc]
                        lambda agent=agent, get=get: _check(agent, get, root, user),  # type: ignore[misc]
                        lambda get=get: json_uninstall(get())))  # type: ignore[misc]
    out.append(_cline_item(root, user))
    return out


def live_targets(root: Path | None, user: bool) -> list[tuple[str, Path]]:
    """(agent, the file that holds our hook) for `agents check --live`."""
    out = [(agent, settings_path(agent, root, user))
           for agent in ("claude", "gemini", "codex", "cursor")]
    cline = cline_path(root, user)
    return out + ([("cline", cline)] if cline is not None else [])


def next_steps(root: Path | None, user: bool) -> list[str]:
    """What the user must do once, per tool, before its hook runs (empty when done)."""
    out = []
    for item in items(root, user):
        status, detail = item.check()
        if status in (Status.NEEDS_APPROVAL, Status.UNTRUSTED):
            out.append(f"{item.name}: {detail}")
    return out


def created_folders(root: Path) -> list[Path]:
    return [root / ".claude", root / ".gemini", root / ".codex", root / ".cursor",
            root / ".clinerules" / "hooks"]
