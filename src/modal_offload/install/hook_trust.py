"""The one step each tool needs before it runs a workspace's hooks, and whether it is done.

Codex 0.171 runs a project's `.codex/hooks.json` only when the project is trusted
(`[projects."<dir>"] trust_level = "trusted"` in config.toml) and the hook itself has been
approved in its "Hooks need review" screen, which records
`[hooks.state."<hooks.json>:pre_tool_use:<group>:<hook>"] trusted_hash = "sha256:..."`. No
documented command writes that entry, so we report it and say how; we never write it.

Gemini CLI 0.61 ignores a workspace's settings (hooks included) until the folder is trusted:
`~/.gemini/trustedFolders.json` (or `$GEMINI_CLI_TRUSTED_FOLDERS_PATH`) maps paths to
`TRUST_FOLDER`/`TRUST_PARENT`/`DO_NOT_TRUST`, longest match wins, unless folder trust is off
(`security.folderTrust.enabled: false`) or `GEMINI_CLI_TRUST_WORKSPACE=true`.
Code paths: docs/agent-hooks.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .. import paths
from . import jsonc
from .blocks import Status

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MARK = "modal_offload.hooks"


def _our_index(entries: Any) -> tuple[int, int] | None:
    if not isinstance(entries, list):
        return None
    for g, group in enumerate(entries):
        inner = group.get("hooks") if isinstance(group, dict) else None
        for h, hook in enumerate(inner if isinstance(inner, list) else []):
            if isinstance(hook, dict) and MARK in str(hook.get("command", "")):
                return g, h
    return None


def codex(settings: Path, project: Path | None) -> tuple[Status, str]:
    """Has the user approved our Codex hook (and trusted the project)?"""
    how = (f"run `codex` in {project or paths.home()} once, trust the folder if it asks, and "
           "choose \"Trust all and continue\" under \"Hooks need review\" (or use /hooks)")
    try:
        data: Any = jsonc.loads(settings.read_text(encoding="utf-8"))
        index = _our_index(data.get("hooks", {}).get("PreToolUse"))
    except (OSError, ValueError, AttributeError):
        index = None
    if index is None:
        return Status.MISSING, str(settings)
    config_path = paths.codex_user_dir() / "config.toml"
    try:
        config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        config = {}
    except (OSError, ValueError) as exc:
        return Status.FOREIGN, f"cannot read {config_path}: {exc}"
    if project is not None:
        projects = config.get("projects", {})
        level = next((v.get("trust_level") for k, v in projects.items()
                      if isinstance(v, dict) and os.path.realpath(k) ==
                      os.path.realpath(project)), None)
        if level != "trusted":
            return Status.NEEDS_APPROVAL, (f"Codex does not trust {project}, so it runs no "
                                           f"project hook; {how}")
    state = config.get("hooks", {}).get("state", {})
    keys = {f"{p}:pre_tool_use:{index[0]}:{index[1]}"
            for p in (settings.absolute(), settings.resolve())}
    entry = next((state[k] for k in keys if isinstance(state.get(k), dict)), None)
    if entry is None or not entry.get("trusted_hash"):
        return Status.NEEDS_APPROVAL, f"Codex runs this hook only once approved: {how}"
    if entry.get("enabled") is False:
        return Status.FOREIGN, f"the hook is disabled in {config_path}; enable it with /hooks"
    return Status.OK, (f"approved in {config_path} (Codex re-asks if the hook changes: "
                       "rerun `agents check` after an upgrade)")


def gemini(project: Path) -> tuple[Status, str]:
    """Will Gemini CLI load this workspace's settings (and so our hook)?"""
    how = (f"run `gemini` in {project} and trust the folder, or add "
           f"{{\"{project}\": \"TRUST_FOLDER\"}} to {_trusted_folders_file()}")
    if os.environ.get("GEMINI_CLI_TRUST_WORKSPACE") == "true":
        return Status.OK, "GEMINI_CLI_TRUST_WORKSPACE=true"
    try:
        user: Any = jsonc.loads((paths.gemini_user_dir() / "settings.json").read_text("utf-8"))
        enabled = user.get("security", {}).get("folderTrust", {}).get("enabled", True)
    except (OSError, ValueError, AttributeError):
        enabled = True
    if enabled is False:
        return Status.OK, "folder trust is off in ~/.gemini/settings.json"
    try:
        rules: Any = jsonc.loads(_trusted_folders_file().read_text("utf-8"))
    except FileNotFoundError:
        rules = {}
    except (OSError, ValueError) as exc:
        return Status.FOREIGN, f"cannot read {_trusted_folders_file()}: {exc}"
    here = os.path.realpath(project)
    best, level = -1, None
    for rule, value in (rules.items() if isinstance(rules, dict) else ()):
        base = os.path.dirname(rule) if value == "TRUST_PARENT" else rule
        real = os.path.realpath(base)
        if (here == real or here.startswith(real.rstrip("/") + "/")) and len(rule) > best:
            best, level = len(rule), value
    if level in ("TRUST_FOLDER", "TRUST_PARENT"):
        return Status.OK, f"trusted in {_trusted_folders_file()}"
    return Status.UNTRUSTED, f"Gemini CLI ignores this workspace's hooks until trusted: {how}"


def _trusted_folders_file() -> Path:
    env = os.environ.get("GEMINI_CLI_TRUSTED_FOLDERS_PATH")
    return Path(env) if env else paths.gemini_user_dir() / "trustedFolders.json"
