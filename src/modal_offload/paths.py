"""Every location on disk, in one place.

Each location resolves as: explicit environment override, then the platform default
(platformdirs), so tests can redirect everything by setting HOME / XDG_* and the
`MODAL_OFFLOAD_*_DIR` variables. No other module may call `Path.home()`.

Importing this module costs nothing beyond `os`/`sys`: pathlib (~10 ms) and platformdirs
load on first use, because the session host's thin client, which runs for every routed
command, needs `runtime_dir_str()` and nothing else (issue #8).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

APP = "modal-offload"
WORKSPACE_CONFIG_NAME = ".modal-offload.toml"
SHIMS_DIRNAME = ".modal-shims"
IGNORE_FILE_NAME = ".modal-offloadignore"


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _platform_dir(kind: str) -> Path:
    import platformdirs

    return _path(getattr(platformdirs, f"user_{kind}_dir")(APP))


def home() -> Path:
    return _path(os.environ.get("HOME") or os.path.expanduser("~"))


def expand_user(value: str) -> str:
    """A user-written path such as git's `core.excludesFile = ~/x` (`~` and `~user` forms)."""
    return os.path.expanduser(value) if value.startswith("~") else value


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return _path(os.path.expanduser(value)) if value else None


def usage_file() -> Path:
    """The daily ledger; the original toolkit's file name and env var are kept."""
    return _env_path("PRIMARY_MODAL_USAGE_FILE") or home() / ".primary_compute_modal_usage.json"


def cache_dir() -> Path:
    return _env_path("MODAL_OFFLOAD_CACHE_DIR") or _platform_dir("cache")


def state_dir() -> Path:
    return _env_path("MODAL_OFFLOAD_STATE_DIR") or _platform_dir("state")


def config_dir() -> Path:
    return _env_path("MODAL_OFFLOAD_CONFIG_DIR") or _platform_dir("config")


def user_config_file() -> Path:
    return config_dir() / "config.toml"


def runtime_dir_str(environ: Mapping[str, str] | None = None) -> str:
    """Per-user folder for the session host's socket, as a plain string and for a given
    environment: what the thin client needs. The /tmp fallback's name can be guessed by
    other users: every user of it checks it first (`private.verify_private_dir`, #13)."""
    env = os.environ if environ is None else environ
    override = env.get("MODAL_OFFLOAD_RUNTIME_DIR")
    if override:
        return os.path.expanduser(override)
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, APP)
    return f"/tmp/{APP}-{os.getuid()}"


def runtime_dir() -> Path:
    return _path(runtime_dir_str())


def sandboxes_dir() -> Path:
    """Scratch folders that stand for remote containers in the local sandbox backend."""
    return cache_dir() / "sandboxes"


def sessions_state_dir() -> Path:
    """Client-side session records (manifests after sync, backend ids, timings)."""
    return state_dir() / "sessions"


def local_bin_dir() -> Path:
    return _env_path("MODAL_OFFLOAD_BIN_DIR") or home() / ".local" / "bin"


def agent_runner_path() -> Path:
    return local_bin_dir() / "modal-agent-runner"


def modal_config_file() -> Path:
    """Modal's own credentials file (the client honours MODAL_CONFIG_PATH too)."""
    return _env_path("MODAL_CONFIG_PATH") or home() / ".modal.toml"


def backups_dir() -> Path:
    return state_dir() / "backups"


def shell_rc_files() -> list[Path]:
    h = home()
    return [h / ".zshenv", h / ".zprofile", h / ".zshrc", h / ".bashrc", h / ".profile"]


def antigravity_user_dir() -> Path:
    if sys.platform == "darwin":
        return home() / "Library" / "Application Support" / "Antigravity" / "User"
    return home() / ".config" / "Antigravity" / "User"


def shims_dir(workspace: Path) -> Path:
    return workspace / SHIMS_DIRNAME


def shims_marker(workspace: Path) -> Path:
    """Present when our shims are installed; shells look for it walking up from $PWD."""
    return shims_dir(workspace) / ".modal-offload-shims"


def zsh_absolute_wrappers(workspace: Path) -> Path:
    """zsh functions named like `/bin/ls`, so absolute paths route in zsh too."""
    return shims_dir(workspace) / ".zsh-absolute.zsh"


def shims_registry() -> Path:
    """The shim folders `shims install` wrote: the only ones shells activate (issue 13).
    templates/modal_activate.sh (`_mo_registry`) computes the same path in sh."""
    return state_dir() / "trusted-shims"


def shell_support_dir() -> Path:
    """Files the rc blocks source (activation logic, the BASH_ENV entry point)."""
    return config_dir() / "shell"


def shell_route_script() -> Path:
    return shell_support_dir() / "route.sh"


def bash_env_script() -> Path:
    return shell_support_dir() / "bash_env.sh"


def completion_dir() -> Path:
    """Generated tab-completion scripts; zsh finds `_modal-offload` here through $fpath."""
    return shell_support_dir() / "completion"


def bash_profile_file() -> Path:
    """Login bash reads this *instead of* ~/.profile when it exists."""
    return home() / ".bash_profile"


# Agent configuration folders (issue #7): each honours the agent's own override variable.
def claude_user_dir() -> Path:
    return _env_path("CLAUDE_CONFIG_DIR") or home() / ".claude"


def gemini_user_dir() -> Path:
    return home() / ".gemini"


def codex_user_dir() -> Path:
    return _env_path("CODEX_HOME") or home() / ".codex"


def cursor_user_dir() -> Path:
    return home() / ".cursor"


def cline_user_hooks_dir() -> Path:
    """Cline's global hooks folder (its docs: ~/Documents/Cline/Hooks/)."""
    return home() / "Documents" / "Cline" / "Hooks"
