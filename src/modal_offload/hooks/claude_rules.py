"""The user's own Claude Code permission rules, applied to the command as the model wrote it.

Claude Code checks its `deny`/`ask` rules against the input a hook hands back (2.1.332:
the `Hook returned '...' ... deny rule overrides` branch runs the rule check on the
*updated* input). After our rewrite that input is `modal-agent-runner -c '<command>'`, which
no rule like `Bash(rm -rf:*)` matches, so a hook that rewrites must apply the rules to the
original command itself (docs/agent-hooks.md cites the code). Standard library only.

Matching is deliberately loose for `deny`/`ask` (any rule that could match the whole string
or any one of its commands counts) and strict for `allow` (every command must match), so an
imperfect match errs towards asking the user.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..shellparse import Command

MANAGED = "/etc/claude-code/managed-settings.json"
_RULE = re.compile(r"^Bash(?:\((.*)\))?$", re.S)


@dataclass
class Rules:
    deny: list[str | None] = field(default_factory=list)  # None: every Bash command
    ask: list[str | None] = field(default_factory=list)
    allow: list[str | None] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def settings_files(cwd: str, root: str | None, environ: Mapping[str, str]
                   ) -> tuple[list[str], list[str]]:
    """(every settings file that may hold rules, the project ones among them whose folder
    Claude does not trust)."""
    user = environ.get("CLAUDE_CONFIG_DIR") or os.path.join(environ.get("HOME", "/"), ".claude")
    out = [MANAGED, os.path.join(user, "settings.json")]
    untrusted: list[str] = []
    folder = os.path.abspath(cwd)
    stop = os.path.abspath(root) if root else folder
    while True:
        project = [os.path.join(folder, ".claude", "settings.json"),
                   os.path.join(folder, ".claude", "settings.local.json")]
        out += project
        if not trusted(folder, environ):
            untrusted += project
        parent = os.path.dirname(folder)
        if folder == stop or parent == folder or not folder.startswith(stop):
            break
        folder = parent
    return out, untrusted


def trusted(folder: str, environ: Mapping[str, str]) -> bool:
    """Has the user accepted Claude's trust dialog for `folder`? Until then Claude ignores a
    project's `permissions.allow` ("Ignoring N permissions.allow entries from
    .claude/settings.json: this workspace has not been trusted", 2.1.332), and so do we."""
    config = environ.get("CLAUDE_CONFIG_DIR")
    path = (os.path.join(config, ".claude.json") if config
            else os.path.join(environ.get("HOME", "/"), ".claude.json"))
    try:
        with open(path, encoding="utf-8") as f:
            projects = json.load(f).get("projects", {})
        return projects.get(os.path.abspath(folder), {}).get("hasTrustDialogAccepted") is True
    except (OSError, ValueError, AttributeError):
        return False


def load(files: Iterable[str], untrusted: Iterable[str] = ()) -> Rules:
    """The Bash rules in `files`; `allow` entries of files in `untrusted` are skipped."""
    rules = Rules()
    skip_allow = set(untrusted)
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            rules.unreadable.append(path)
            continue
        perms = data.get("permissions") if isinstance(data, dict) else None
        if not isinstance(perms, dict):
            continue
        for key in ("deny", "ask", "allow"):
            if key == "allow" and path in skip_allow:
                continue
            entries = perms.get(key)
            if not isinstance(entries, list):
                continue
            for entry in entries:
                match = _RULE.match(entry.strip()) if isinstance(entry, str) else None
                if match:
                    content = match.group(1)
                    getattr(rules, key).append(None if content in (None, "", "*") else content)
    return rules


def _matches(content: str | None, command: str, loose: bool) -> bool:
    command = command.strip()
    if content is None:
        return True
    if content.endswith(":*"):
        prefix = content[:-2]
        return command.startswith(prefix) if loose else (
            command == prefix or command.startswith(prefix + " "))
    if "*" in content:
        pattern = ".*".join(re.escape(p) for p in content.split("*"))
        if content.endswith(" *"):  # `Bash(ls *)` also matches a bare `ls`
            pattern = pattern[:-len(re.escape(" ") + ".*")] + r"(?: .*)?"
        return re.fullmatch(pattern, command, re.S) is not None
    return command == content or (loose and command.startswith(content + " "))


def _candidates(original: str, commands: Sequence[Command] | None) -> list[str]:
    out = [original]
    for c in commands or ():
        out.append(c.text)
        if c.words and all(w is not None for w in c.words):
            out.append(" ".join(w for w in c.words if w is not None))
    return out


def decide(original: str, commands: Sequence[Command] | None, mode: str,
           rules: Rules) -> tuple[str, str]:
    """("deny" | "ask" | "allow", why) for the command as the model wrote it."""
    if rules.unreadable:
        return "ask", f"cannot read {rules.unreadable[0]}; asking instead of guessing its rules"
    candidates = _candidates(original, commands)
    for key in ("deny", "ask"):
        for content in getattr(rules, key):
            if any(_matches(content, c, loose=True) for c in candidates):
                return key, f"your Claude Code permission rule {key}: Bash({content or '*'})"
    if mode == "bypassPermissions":
        return "allow", "permission mode bypassPermissions"
    if commands and all(any(_matches(r, c.text, loose=False) or _matches(
            r, " ".join(w or "" for w in c.words), loose=False) for r in rules.allow)
            for c in commands):
        return "allow", "every command matches one of your Claude Code allow rules"
    if any(_matches(r, original, loose=False) for r in rules.allow):
        return "allow", "matches one of your Claude Code allow rules"
    return "ask", "no Claude Code allow rule covers it"
