"""The one local-only policy: which command names run here rather than in the remote session.

Shared by the shims (a local-only name gets no shim), `modal-offload route`, and the agent
hook (`modal_offload.hooks`), which runs before every agent command and therefore imports the
standard library only: so does this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

RUNNER_NAME = "modal-agent-runner"
# Never routed, whatever the settings say: routing these would recurse into ourselves.
OWN_COMMANDS = frozenset({"modal-offload", RUNNER_NAME})

# The original toolkit's local-only list: control plane, version control, remote access.
CONTROL_PLANE = frozenset({"sudo", "su", "login", "modal", "git", "gh", "make", "ssh", "scp",
                           "sftp", "rsync"})
EDITORS = frozenset({"vim", "nvim", "vi", "nano", "emacs"})
GUI_OPENERS = frozenset({"xdg-open", "open", "code", "cursor"})
# A shim is itself a `sh` script, and a shell started remotely would lose the user's terminal.
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "fish", "tcsh", "csh",
                    "busybox"})
# Names that shells implement as builtins but that also exist as files on PATH (`/usr/bin/[`);
# they touch the current shell or are too cheap to ever be worth a round trip.
BUILTINS = frozenset({
    "[", "test", "echo", "printf", "true", "false", "kill", "pwd", "cd", "command", "type",
    "hash", "ulimit", "umask", "wait", "read", "alias", "unalias", "getopts", "jobs", "fg",
    "bg", "exec", "exit", "export", "source", ".", "eval", "set", "unset", "shift", "trap",
    "times", "let", "declare", "local", "typeset", "readonly", "return", "break", "continue",
    "builtin", "enable", "help", "history", "logout", "pushd", "popd", "dirs", "disown",
    "suspend", "fc", "which", "whence", "where", "rehash", "time", "nohup",
})

CATEGORIES: tuple[tuple[str, frozenset[str]], ...] = (
    ("shell", SHELLS), ("shell-builtin", BUILTINS), ("control-plane", CONTROL_PLANE),
    ("editor", EDITORS), ("gui", GUI_OPENERS),
)
DEFAULT_LOCAL_ONLY = frozenset().union(*(names for _, names in CATEGORIES))

# Local-only names that run *another* command given in their arguments or a file. A shim for
# the inner command still routes it, but a hook sees one string: `bash -c "pytest"`,
# `sudo pytest`, `source build.sh` or `xargs pytest` would run that inner work here. So the
# hook never counts these as proof that a command is local (the user's own `local_only` still
# wins).
RUNS_OTHER_COMMANDS = frozenset({
    *SHELLS, "sudo", "su", "login", "env", "command", "builtin", "exec", "eval", "source", ".",
    "time", "nohup", "xargs", "nice", "timeout", "watch",
})
# Commands that act on this machine's repository: the remote copy has no `.git`, so a
# pipeline or list that runs one of these anywhere stays local as a whole.
REPOSITORY = frozenset({"git"})

REMOTE_MARKER = "MODAL_OFFLOAD_REMOTE"
BYPASS_MARKER = "MODAL_OFFLOAD_BYPASS"


def command_name(command: str) -> str:
    """`/usr/bin/python3` -> `python3`: a path is routed by its name."""
    return os.path.basename(command) if "/" in command else command


def static_rule(name: str, local_only: Iterable[str] = (), remote_always: Iterable[str] = (),
                sources: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """(where, rule, why) for one command name: `where` is "local" or "remote"."""
    name = command_name(name)
    sources = sources or {}
    if name in OWN_COMMANDS:
        return "local", "own-command", f"{name} is modal-offload itself; routing it would recurse"
    if name in local_only:
        return ("local", "user-local-only",
                f"listed in local_only ({sources.get('local_only', 'settings')})")
    if name in remote_always:
        return ("remote", "user-remote",
                f"listed in remote ({sources.get('remote_always', 'settings')})")
    for category, names in CATEGORIES:
        if name in names:
            return ("local", f"default-local-only:{category}",
                    f"{name} is on the built-in local-only list ({category})")
    return "remote", "default-remote", "not local-only: runs in the workspace's remote session"


def runtime_rule(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(rule, why) when the environment keeps every command local, else None."""
    if environ.get(REMOTE_MARKER) == "1":
        return "inside-remote", f"{REMOTE_MARKER}=1: already inside the remote session"
    if environ.get(BYPASS_MARKER) == "1":
        return "bypass", f"{BYPASS_MARKER}=1: modal-offload itself is running it locally"
    return None
