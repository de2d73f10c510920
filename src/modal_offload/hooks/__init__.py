"""The program agents call before each shell command: route it through the runner, or block.

`python -m modal_offload.hooks AGENT --runner PATH [--block-only]` reads the agent's hook JSON
on stdin and answers in that agent's schema (docs/agent-hooks.md, which cites each tool's
code). It runs before every command an agent issues, so it imports the standard library and
our own stdlib-only modules only.

It fails closed: bad JSON, a payload without the fields we rely on (no `tool_name`), a missing
runner or any exception of ours blocks the command with a reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ..shellparse import Unsupported, parse
from . import claude_rules
from .classify import Lists, Verdict, decide

AGENTS = ("claude", "codex", "gemini", "cursor", "cline")
SHELL_TOOL = {"claude": "Bash", "codex": "Bash", "gemini": "run_shell_command"}
CLINE_SINGLE = "execute_command"  # the VS Code extension's tool: {"command": "..."}
CLINE_MULTI = "run_commands"  # CLI 3.x: {"commands": [...]}, a JSON string in `parameters`


class Call:
    """The shell command(s) of one tool call, and how to put rewritten ones back."""

    def __init__(self, commands: list[str], tool_input: dict[str, Any], multi: bool = False):
        self.commands = commands
        self.tool_input = tool_input
        self.multi = multi


def shell_call(agent: str, payload: Any) -> Call | None:
    """The call's shell command(s), or None when the tool is not a shell at all.
    Raises ValueError on a shape we do not know (which blocks)."""
    if not isinstance(payload, dict):
        raise ValueError("hook input is not a JSON object")
    if agent == "cursor":
        command = payload.get("command")
        if not isinstance(command, str):
            raise ValueError("no command string in the input")
        return Call([command], {"command": command})
    if agent == "cline":
        return _cline_call(payload)
    tool = payload.get("tool_name")
    if not isinstance(tool, str):
        raise ValueError("no tool_name in the input")
    if tool != SHELL_TOOL[agent]:
        return None
    given = payload.get("tool_input")
    if not isinstance(given, dict) or not isinstance(given.get("command"), str):
        raise ValueError("tool_input.command is missing or not a string")
    return Call([given["command"]], given)


def _cline_call(payload: dict[str, Any]) -> Call | None:
    pre = payload.get("preToolUse")
    if not isinstance(pre, dict) or not isinstance(pre.get("toolName"), str):
        raise ValueError("no preToolUse.toolName in the input")
    tool = pre["toolName"]
    params: Any = pre.get("parameters")
    if tool == CLINE_SINGLE:
        if not isinstance(params, dict) or not isinstance(params.get("command"), str):
            raise ValueError("preToolUse.parameters.command is missing")
        return Call([params["command"]], params)
    if tool != CLINE_MULTI:
        return None
    # CLI 3.x flattens each parameter to a string (`commands` is JSON text); `tool_call.input`
    # carries the real object, which is also what `overrideInput` replaces.
    call = payload.get("tool_call")
    tool_input: Any = call.get("input") if isinstance(call, dict) else None
    if not isinstance(tool_input, dict):
        raw = params.get("commands") if isinstance(params, dict) else None
        tool_input = {"commands": json.loads(raw) if isinstance(raw, str) else raw}
    commands = tool_input.get("commands")
    if isinstance(commands, str):
        commands = [commands]
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ValueError("run_commands.commands is not a list of strings")
    return Call(list(commands), tool_input, multi=True)


def _cwd(payload: Mapping[str, Any]) -> str:
    """The agent's current folder: the payload's `cwd` when it is one, else ours (every tool
    starts its hooks in the project folder)."""
    given = payload.get("cwd")
    return given if isinstance(given, str) and os.path.isdir(given) else os.getcwd()


def _settings(cwd: str) -> tuple[Lists, str | None, str | None]:
    """The user's routing lists, the workspace root, and a reason everything stays local."""
    from pathlib import Path

    from .. import config, workspace
    from ..localonly import runtime_rule

    runtime = runtime_rule(os.environ)
    if runtime is not None:
        return Lists(), None, runtime[1]
    ws = workspace.find(Path(cwd))
    if ws is None:
        return Lists(), None, "not inside a workspace, so nothing to sync"
    settings = config.load(ws.root)
    return Lists(settings.local_only, settings.remote_always), str(ws.root), None


def answer(agent: str, verdicts: list[Verdict], call: Call | None,
           payload: Mapping[str, Any], root: str | None) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) in the agent's schema."""
    blocked = [v for v in verdicts if v.action == "block"]
    rewrites = [v for v in verdicts if v.action == "rewrite"]
    if not blocked and rewrites and (agent == "cursor" or (
            agent == "cline" and not (call and call.multi))):
        blocked = [Verdict("block", v.reason) for v in rewrites]  # no rewrite in these hooks
    reason = " ".join(v.reason for v in blocked or rewrites)
    if agent == "cline":
        if blocked:
            return json.dumps({"cancel": True, "errorMessage": reason}), "", 0
        if not rewrites or call is None:
            return json.dumps({"cancel": False}), "", 0
        commands = [v.command if v.action == "rewrite" else c
                    for v, c in zip(verdicts, call.commands, strict=True)]
        return json.dumps({"overrideInput": {**call.tool_input, "commands": commands}}), "", 0
    if agent == "cursor":
        if not blocked:
            return "{}", "", 0
        # Both spellings: Cursor documented camelCase first, snake_case later.
        return json.dumps({"continue": True, "permission": "deny", "user_message": reason,
                           "agent_message": reason, "userMessage": reason,
                           "agentMessage": reason}), "", 0
    if blocked:
        if agent == "claude":
            return _claude("deny", reason), "", 0
        return "", reason + "\n", 2  # exit 2 + stderr: Codex's and Gemini's blocking form
    if not rewrites or call is None:
        return ("{}" if agent == "gemini" else ""), "", 0
    updated = {**call.tool_input, "command": rewrites[0].command}
    if agent == "gemini":
        # No "decision": Gemini's own policy engine then checks the rewritten arguments.
        return json.dumps({"hookSpecificOutput": {"hookEventName": "BeforeTool",
                                                  "tool_input": updated}}), "", 0
    if agent == "codex":
        return _claude("allow", reason, updated), "", 0  # Codex's only accepted rewrite form
    original = call.commands[0]
    try:
        parsed = parse(original, os.environ)
    except Unsupported:
        parsed = None
    cwd = _cwd(payload)
    rules = claude_rules.load(*claude_rules.settings_files(cwd, root, os.environ))
    decision, why = claude_rules.decide(original, parsed, str(payload.get("permission_mode", "")),
                                        rules)
    if decision == "deny":
        return _claude("deny", f"modal-offload: blocked by {why}."), "", 0
    return _claude(decision, f"{reason} ({why})", updated), "", 0


def _claude(decision: str, reason: str, updated: dict[str, Any] | None = None) -> str:
    out: dict[str, Any] = {"hookEventName": "PreToolUse", "permissionDecision": decision,
                           "permissionDecisionReason": reason}
    if updated is not None:
        out["updatedInput"] = updated
    return json.dumps({"hookSpecificOutput": out})


def run(argv: list[str], stdin_text: str) -> tuple[str, str, int]:
    agent = argv[0] if argv else ""
    if agent not in AGENTS:
        return "", f"modal-offload hook: unknown agent {agent!r}; blocked\n", 2
    call: Call | None = None
    try:
        runner = argv[argv.index("--runner") + 1]
        payload = json.loads(stdin_text)
        call = shell_call(agent, payload)
        if call is None:
            return answer(agent, [], None, {}, None)
        cwd = _cwd(payload)
        lists, root, local_reason = _settings(cwd)
        if local_reason is not None:
            return answer(agent, [Verdict("pass", local_reason)], call, payload, root)
        verdicts = [decide(c, runner, os.environ, lists) for c in call.commands]
        if "--block-only" in argv:
            verdicts = [Verdict("block", v.reason) if v.action == "rewrite" else v
                        for v in verdicts]
        return answer(agent, verdicts, call, payload, root)
    except Exception as exc:  # fail closed: whatever went wrong, the command does not run
        reason = (f"modal-offload hook failed ({exc.__class__.__name__}: {exc}); the command "
                  "was blocked. Check `modal-offload agents check`.")
        out, err, code = answer(agent, [Verdict("block", reason)], call, {}, None)
        return out, err or reason + "\n", code
