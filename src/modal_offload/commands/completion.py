"""`modal-offload completion bash|zsh`: print the script, for those who manage their own rc
files (`eval "$(modal-offload completion bash)"`); `shell-bootstrap install` sets it up."""

from __future__ import annotations

from ..install import completion


def run(shell: completion.Shell) -> int:
    print(completion.script(shell), end="")
    return 0
