"""The program agents call before each shell command: route it through the runner, or block.

`python -m modal_offload.hooks AGENT --runner PATH [--block-only]` reads the agent's hook JSON
on stdin and answers in that agent's schema (docs/agent-hooks.md). It runs before every
command an agent issues, so it imports the standard library only.

It fails closed: bad JSON, an unexpected shape, a missing runner or any exception of ours
blocks the command with a reason; nothing ever passes silently because the hook broke.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from typing import Any

AGENTS = ("claude", "codex", "gemini", "cursor", "cline")
BLOCK_ONLY = frozenset({"cursor", "cline"})  # their hooks cannot rewrite a command
RUNNER_NAME = "modal-agent-runner"
# Run here, unchanged: they act on this machine's repository, account or shell state
# (the remote copy of the workspace has no .git, and `cd` in a remote shell changes nothing).
LOCAL_ONLY = frozenset({"git", "gh", "modal", "modal-offload", "cd", "pushd", "popd",
                        "export", "unset", "alias", "unalias", "source", "."})
_OPERATORS = set(";&|<>()\n")


@dataclass(frozen=True)
class Verdict:
    action: str  # "pass", "rewrite" or "block"
    reason: str = ""
    command: str = ""  # the rewritten command


def is_simple(command: str) -> bool:
    """One plain command: no operators, redirections, newlines or command substitution
    outside quotes (so nothing can run before or beside the first word)."""
    quote = ""
    i = 0
    while i < len(command):
        c = command[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1
        elif c == "`" or command.startswith("$(", i):
            return False
        elif quote == '"':
            quote = "" if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif c in _OPERATORS:
            return False
        i += 1
    return quote == ""


def first_word(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    return words[0] if words else None


def runner_problem(runner: str) -> str | None:
    if not os.path.isabs(runner):
        return f"the runner path {runner!r} is not absolute"
    if not os.path.isfile(runner):
        return f"the runner {runner} is missing"
    if not os.access(runner, os.X_OK):
        return f"the runner {runner} is not executable"
    return None


def decide(command: str, runner: str) -> Verdict:
    if not command.strip():
        return Verdict("pass")
    simple = is_simple(command)
    word = first_word(command) if simple else None
    if word is not None and word in LOCAL_ONLY:
        return Verdict("pass", f"{word} runs locally")
    problem = runner_problem(runner)
    if problem:
        from ..installation import fix

        return Verdict("block", f"modal-offload: {problem}; terminal commands here must run "
                                f"through it. Fix: `{fix('agent-runner')}`, then retry.")
    if word is not None and word in (runner, RUNNER_NAME):
        return Verdict("pass", "already runs through the runner")
    rewritten = f"{shlex.quote(runner)} -c {shlex.quote(command)}"
    return Verdict("rewrite", "modal-offload: routed through the remote runner "
                              f"(policy: ANTIGRAVITY.md). Run instead: {rewritten}", rewritten)


def shell_command(agent: str, payload: Any) -> tuple[str | None, dict[str, Any]]:
    """The shell command in `payload` and the tool input it came in, or (None, {}) when the
    call is not a shell command at all. Raises ValueError on a shape we do not know."""
    if not isinstance(payload, dict):
        raise ValueError("hook input is not a JSON object")
    if agent == "cursor":
        command = payload.get("command")
        tool_input: dict[str, Any] = {"command": command}
    elif agent == "cline":
        pre = payload.get("preToolUse")
        if not isinstance(pre, dict):
            raise ValueError("no preToolUse object in the input")
        if pre.get("toolName") != "execute_command":
            return None, {}
        params: Any = pre.get("parameters")
        if not isinstance(params, dict):
            raise ValueError("preToolUse.parameters is not an object")
        tool_input, command = params, params.get("command")
    else:
        expected = "run_shell_command" if agent == "gemini" else "Bash"
        if payload.get("tool_name") != expected:
            return None, {}
        given: Any = payload.get("tool_input")
        if not isinstance(given, dict):
            raise ValueError("tool_input is not an object")
        tool_input, command = given, given.get("command")
    if not isinstance(command, str):
        raise ValueError("the shell command is missing or not a string")
    return command, tool_input


def answer(agent: str, verdict: Verdict, tool_input: dict[str, Any]) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) in the agent's schema."""
    if verdict.action == "rewrite" and agent in BLOCK_ONLY:
        verdict = Verdict("block", verdict.reason)
    updated = {**tool_input, "command": verdict.command}
    if agent in ("claude", "codex"):
        if verdict.action == "pass":
            return "", "", 0
        if verdict.action == "block" and agent == "codex":
            return "", verdict.reason + "\n", 2  # exit 2 + stderr: Codex's blocking form
        decision = "allow" if verdict.action == "rewrite" else "deny"
        out: dict[str, Any] = {"hookEventName": "PreToolUse", "permissionDecision": decision,
                               "permissionDecisionReason": verdict.reason}
        if verdict.action == "rewrite":
            out["updatedInput"] = updated
        return json.dumps({"hookSpecificOutput": out}), "", 0
    if agent == "gemini":
        if verdict.action == "pass":
            return "{}", "", 0
        if verdict.action == "block":
            return json.dumps({"decision": "deny", "reason": verdict.reason}), "", 0
        # No "decision": Gemini's own confirmation still applies to the rewritten command.
        return json.dumps({"hookSpecificOutput": {"hookEventName": "BeforeTool",
                                                  "tool_input": updated}}), "", 0
    if agent == "cursor":
        if verdict.action == "pass":
            return "{}", "", 0
        # Both spellings: Cursor documented camelCase first, snake_case later.
        return json.dumps({"continue": True, "permission": "deny",
                           "user_message": verdict.reason, "agent_message": verdict.reason,
                           "userMessage": verdict.reason, "agentMessage": verdict.reason}), "", 0
    if verdict.action == "pass":
        return json.dumps({"cancel": False}), "", 0
    return json.dumps({"cancel": True, "errorMessage": verdict.reason}), "", 0


def run(argv: list[str], stdin_text: str) -> tuple[str, str, int]:
    agent = argv[0] if argv else ""
    if agent not in AGENTS:
        return "", f"modal-offload hook: unknown agent {agent!r}; blocked\n", 2
    try:
        runner = argv[argv.index("--runner") + 1]
        command, tool_input = shell_command(agent, json.loads(stdin_text))
        if command is None:
            return answer(agent, Verdict("pass"), tool_input)
        verdict = decide(command, runner)
        if verdict.action == "rewrite" and "--block-only" in argv:
            verdict = Verdict("block", verdict.reason)
        return answer(agent, verdict, tool_input)
    except Exception as exc:  # fail closed: whatever went wrong, the command does not run
        reason = (f"modal-offload hook failed ({exc.__class__.__name__}: {exc}); the command "
                  "was blocked. Check `modal-offload agents check`.")
        out, err, code = answer(agent, Verdict("block", reason), {})
        return out, err or reason + "\n", code
