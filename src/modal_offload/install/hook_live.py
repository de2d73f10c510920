"""`agents check --live`: one harmless command through each installed hook, as its tool would.

For each tool we run the hook command exactly as configured (Claude, Codex, Gemini and Cursor
run it under `sh -c`; Cline runs the script), feed it that tool's payload for
`printf '%s\\n' PROBE | cat` (which must be routed: `cat` is not local-only), take the command
the hook hands back (or names, for block-only hooks) and run it. The tools themselves need a
model to reach this path, so that part stays `unverified` here; the real-CLI test tier
(tests/agents/test_real_clis.py) is where the tools are run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from . import jsonc
from .blocks import Status

PROBE = "modal-hook-live-ok"
COMMAND = f"printf '%s\\n' {PROBE} | cat"
MARK = "modal_offload.hooks"


def _payload(agent: str, cwd: Path) -> dict[str, Any]:
    if agent in ("claude", "codex"):
        return {"hook_event_name": "PreToolUse", "tool_name": "Bash", "cwd": str(cwd),
                "permission_mode": "default", "tool_input": {"command": COMMAND}}
    if agent == "gemini":
        return {"hook_event_name": "BeforeTool", "tool_name": "run_shell_command",
                "cwd": str(cwd), "tool_input": {"command": COMMAND}}
    if agent == "cursor":
        return {"hook_event_name": "beforeShellExecution", "command": COMMAND, "cwd": str(cwd)}
    return {"hookName": "tool_call", "tool_call": {"name": "run_commands",
                                                   "input": {"commands": [COMMAND]}},
            "preToolUse": {"toolName": "run_commands",
                           "parameters": {"commands": json.dumps([COMMAND])}}}


def _configured(agent: str, path: Path) -> list[str] | None:
    """The argv the tool runs for our hook, or None when it is not installed there."""
    if agent == "cline":
        return [str(path)] if path.is_file() else None
    try:
        data: Any = jsonc.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for entries in (data.get("hooks") or {}).values():
        for entry in entries if isinstance(entries, list) else []:
            inner = entry.get("hooks") if isinstance(entry, dict) else None
            for hook in inner if isinstance(inner, list) else [entry]:
                if isinstance(hook, dict) and MARK in str(hook.get("command", "")):
                    return ["sh", "-c", str(hook["command"])]
    return None


def _handed_back(agent: str, out: str) -> str | None:
    try:
        data: Any = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except ValueError:
        return None
    found: Any = None
    if agent in ("claude", "codex"):
        spec = data.get("hookSpecificOutput", {})
        if spec.get("permissionDecision") in ("allow", "ask"):
            found = spec.get("updatedInput", {}).get("command")
    elif agent == "gemini":
        found = data.get("hookSpecificOutput", {}).get("tool_input", {}).get("command")
    elif agent == "cline":
        commands = data.get("overrideInput", {}).get("commands")
        found = commands[0] if isinstance(commands, list) and commands else None
    else:
        message = str(data.get("agent_message", ""))
        found = message.split("Run instead: ", 1)[1] if "Run instead: " in message else None
    return found if isinstance(found, str) else None


def check(agent: str, path: Path, cwd: Path, timeout: float = 300) -> tuple[Status, str]:
    argv = _configured(agent, path)
    if argv is None:
        return Status.MISSING, f"no hook of ours in {path}"
    try:
        hook = subprocess.run(argv, input=json.dumps(_payload(agent, cwd)), cwd=cwd,
                              capture_output=True, text=True, timeout=60)
        command = _handed_back(agent, hook.stdout)
        if command is None:
            why = (hook.stderr or hook.stdout).strip().splitlines()[-1:] or ["no answer"]
            return Status.DRIFTED, f"the hook did not route the probe (exit {hook.returncode}: " \
                                   f"{why[0][:160]})"
        ran = subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Status.DRIFTED, f"could not run: {exc}"
    if ran.returncode != 0 or ran.stdout != PROBE + "\n":
        err = ran.stderr.strip().splitlines()[-1:] or [""]
        return Status.DRIFTED, (f"the routed probe exited {ran.returncode}, stdout "
                                f"{ran.stdout.strip()[:60]!r} {err[0][:160]}")
    return Status.OK, ("hook routed the probe and the runner printed it; the tool itself "
                       "was not run (unverified without a model)")
