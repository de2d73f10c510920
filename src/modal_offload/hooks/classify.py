"""Where an agent's shell command string runs: unchanged here, through the runner, or nowhere.

One decision for every agent, from the one local-only policy (`modal_offload.localonly`) and a
real parse of the string (`modal_offload.shellparse`). Standard library only.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from ..localonly import REPOSITORY, RUNNER_NAME, RUNS_OTHER_COMMANDS, command_name, static_rule
from ..shellparse import Command, Unsupported, parse


@dataclass(frozen=True)
class Verdict:
    action: str  # "pass", "rewrite" or "block"
    reason: str = ""
    command: str = ""  # the rewritten command


@dataclass(frozen=True)
class Lists:
    """The user's `[routing]` settings, so the hook agrees with the shims and `route`."""

    local_only: tuple[str, ...] = ()
    remote_always: tuple[str, ...] = ()


def runner_problem(runner: str) -> str | None:
    if not os.path.isabs(runner):
        return f"the runner path {runner!r} is not absolute"
    if not os.path.isfile(runner):
        return f"the runner {runner} is missing"
    if not os.access(runner, os.X_OK):
        return f"the runner {runner} is not executable"
    return None


def is_runner(word: str, runner: str) -> bool:
    """Our runner in any spelling: bare name, absolute, `~/...` or `$HOME/...` (already
    expanded by the parser)."""
    if word == RUNNER_NAME:
        return True
    if "/" not in word or command_name(word) != RUNNER_NAME:
        return False
    norm = os.path.normpath(word)
    return norm == os.path.normpath(runner) or os.path.realpath(norm) == os.path.realpath(runner)


def kind(command: Command, runner: str, lists: Lists) -> str:
    """"runner", "repository", "local" or "remote" for one simple command."""
    name = command.name
    if not command.words:
        return "local"  # only assignments: shell state, like `export`
    if name is None:
        return "remote"  # a name we cannot know statically
    if is_runner(name, runner):
        return "runner"
    base = command_name(name)
    if base in REPOSITORY and base not in lists.remote_always:
        return "repository"
    if base in lists.local_only:
        return "local"
    if base in RUNS_OTHER_COMMANDS:
        return "remote"  # runs another command we cannot see: never proof of "local"
    where, _, _ = static_rule(base, lists.local_only, lists.remote_always)
    return where


def rewrite_to(runner: str, command: str) -> str:
    return f"{shlex.quote(runner)} -c {shlex.quote(command)}"


def decide(command: str, runner: str, environ: Mapping[str, str],
           lists: Lists = Lists()) -> Verdict:
    if not command.strip():
        return Verdict("pass")
    try:
        kinds = [kind(c, runner, lists) for c in parse(command, environ)]
    except Unsupported as exc:
        kinds = None
        unsupported = str(exc)
    if kinds is not None:
        if not kinds or all(k in ("local", "runner") for k in kinds):
            return Verdict("pass", "local-only or already through the runner")
        if "repository" in kinds:
            return Verdict("pass", "runs git: the remote copy has no .git, so it stays local")
        if "runner" in kinds:
            return Verdict("block", "modal-offload: this mixes modal-agent-runner with other "
                                    "commands that must be routed; put the whole command "
                                    f"in one call: `{runner} -c '<command>'`")
    problem = runner_problem(runner)
    if problem:
        from ..installation import fix  # stdlib only; loaded just for this message

        return Verdict("block", f"modal-offload: {problem}; terminal commands here must run "
                                f"through it. Fix: `{fix('agent-runner')}`, then retry.")
    if kinds is None and RUNNER_NAME in command:
        return Verdict("block", f"modal-offload: cannot parse this command ({unsupported}) "
                                "and it names the runner; call the runner once, as "
                                f"`{runner} -c '<command>'` with plain single quotes")
    rewritten = rewrite_to(runner, command)
    return Verdict("rewrite", "modal-offload: routed through the remote runner "
                              f"(policy: ANTIGRAVITY.md). Run instead: {rewritten}", rewritten)
