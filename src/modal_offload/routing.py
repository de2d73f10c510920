"""Where a command runs: the local-only rules and the explanation `modal-offload route` prints.

The same rules decide twice: at shim install time (a local-only name gets no shim at all, so
running it costs nothing extra) and in `route` (which also applies the run-time rules a shim
applies in pure sh: inside the remote, inside our own pipeline, outside the workspace).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import Settings
from .local_run import BYPASS_MARKER

# Never routed, whatever the settings say: routing these would recurse into ourselves.
OWN_COMMANDS = frozenset({"modal-offload", "modal-agent-runner"})

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

_CATEGORIES: tuple[tuple[str, frozenset[str]], ...] = (
    ("shell", SHELLS), ("shell-builtin", BUILTINS), ("control-plane", CONTROL_PLANE),
    ("editor", EDITORS), ("gui", GUI_OPENERS),
)
DEFAULT_LOCAL_ONLY = frozenset().union(*(names for _, names in _CATEGORIES))

REMOTE_MARKER = "MODAL_OFFLOAD_REMOTE"


@dataclass(frozen=True)
class Decision:
    command: str
    where: str  # "local" or "remote"
    rule: str  # stable id, e.g. "default-local-only:control-plane"
    why: str  # one human sentence

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def command_name(command: str) -> str:
    """`/usr/bin/python3` -> `python3`: zsh routes common absolute paths by their name."""
    return Path(command).name if "/" in command else command


def static_decision(command: str, settings: Settings) -> Decision:
    """The install-time rules: everything that does not depend on the running environment."""
    name = command_name(command)
    if name in OWN_COMMANDS:
        return Decision(command, "local", "own-command",
                        f"{name} is modal-offload itself; routing it would recurse")
    if name in settings.local_only:
        source = settings.sources.get("local_only", "settings")
        return Decision(command, "local", "user-local-only", f"listed in local_only ({source})")
    if name in settings.remote_always:
        source = settings.sources.get("remote_always", "settings")
        return Decision(command, "remote", "user-remote", f"listed in remote ({source})")
    for category, names in _CATEGORIES:
        if name in names:
            return Decision(command, "local", f"default-local-only:{category}",
                            f"{name} is on the built-in local-only list ({category})")
    return Decision(command, "remote", "default-remote",
                    "not local-only: runs in the workspace's remote session")


def decide(command: str, settings: Settings, *, in_workspace: bool = True,
           environ: Mapping[str, str] | None = None) -> Decision:
    """The full decision, including the run-time rules a shim applies."""
    env = os.environ if environ is None else environ
    if env.get(REMOTE_MARKER) == "1":
        return Decision(command, "local", "inside-remote",
                        f"{REMOTE_MARKER}=1: already inside the remote session")
    if env.get(BYPASS_MARKER) == "1":
        return Decision(command, "local", "bypass",
                        f"{BYPASS_MARKER}=1: modal-offload itself is running it locally")
    decision = static_decision(command, settings)
    if decision.where == "remote" and not in_workspace:
        return Decision(command, "local", "outside-workspace",
                        "the current folder is not inside a workspace, so nothing to sync")
    return decision


def is_shimmed(name: str, settings: Settings) -> bool:
    return static_decision(name, settings).where == "remote"
