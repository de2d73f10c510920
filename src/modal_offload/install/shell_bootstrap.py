"""Shell bootstrap: one guarded block per rc file, so shells that start inside a workspace
with shims installed route automatically, interactive or not.

- zsh reads ~/.zshenv for every shell (`zsh -c` too); ~/.zprofile and ~/.zshrc re-assert
  the shims' place first on PATH after login scripts (macOS path_helper) reorder it.
- bash reads ~/.bashrc (interactive) or ~/.profile / ~/.bash_profile (login), but `bash -c`
  reads only $BASH_ENV: `route.sh` exports BASH_ENV pointing at our `bash_env.sh`, which
  also sources whatever BASH_ENV the user had before (chained, never clobbered).

The blocks only source `route.sh` (a file we own in the config dir); the activation logic
itself is `templates/modal_activate.sh`, shared with scripts/activate_modal_only.sh.
Which workspaces activate: the nearest one up from $PWD whose shims marker is there AND whose
shims folder `shims install` recorded for this user, unchanged since (`install/trust.py`;
pure shell plus one `find`, only inside a workspace with shims). Others are ignored with one
line on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import paths
from . import blocks, owned
from .blocks import Status

BLOCK_NAME = "shell-bootstrap"
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "modal_activate.sh"


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def rc_files() -> list[Path]:
    """The original toolkit's five files, plus ~/.bash_profile when it exists (login bash
    would skip ~/.profile, and with it our block)."""
    files = paths.shell_rc_files()
    if paths.bash_profile_file().exists():
        files.append(paths.bash_profile_file())
    return files


def block_body() -> str:
    route = _q(str(paths.shell_route_script()))
    return f"if [ -r {route} ]; then . {route}; fi\n"


def route_script() -> str:
    bash_env = _q(str(paths.bash_env_script()))
    return f"""# shellcheck shell=sh
# {owned.MARKER}: sourced by modal-offload's shell-bootstrap blocks; regenerated on install
# Non-interactive bash reads only $BASH_ENV: point it at our entry point, keeping the user's.
case ${{BASH_ENV:-}} in
  {bash_env}) ;;
  '') BASH_ENV={bash_env}; export BASH_ENV ;;
  *) MODAL_OFFLOAD_USER_BASH_ENV=$BASH_ENV; BASH_ENV={bash_env}
     export BASH_ENV MODAL_OFFLOAD_USER_BASH_ENV ;;
esac
{TEMPLATE.read_text(encoding="utf-8")}
# Inside the remote or our own pipeline routing stays off: no trust check, no report.
if [ "${{MODAL_OFFLOAD_REMOTE:-}}" != 1 ] && [ "${{MODAL_OFFLOAD_BYPASS:-}}" != 1 ]; then
  _mo_find_shims "${{PWD:-}}"
  if [ -n "$_mo_found" ]; then _mo_activate "$_mo_found"; fi
  unset _mo_found
fi
"""


def bash_env_script() -> str:
    route = _q(str(paths.shell_route_script()))
    return f"""# {owned.MARKER}: $BASH_ENV for non-interactive bash (set by route.sh)
if [ -r {route} ]; then . {route}; fi
# The user's own BASH_ENV from before ours, run as bash would have.
if [ -n "${{MODAL_OFFLOAD_USER_BASH_ENV:-}}" ] && [ -r "$MODAL_OFFLOAD_USER_BASH_ENV" ]; then
  . "$MODAL_OFFLOAD_USER_BASH_ENV"
fi
"""


def _owned_files() -> list[tuple[Path, str]]:
    return [(paths.shell_route_script(), route_script()),
            (paths.bash_env_script(), bash_env_script())]


def install() -> list[Path]:
    """Write our two support files and a block in each rc file; returns changed files.
    Every rc file is checked first: one we may not change (read-only) changes none."""
    body = block_body()
    for rc in rc_files():
        blocks.can_install(rc, BLOCK_NAME, body)
    changed = [path for path, text in _owned_files() if owned.write(path, text)]
    changed += [rc for rc in rc_files() if blocks.install(rc, BLOCK_NAME, body)]
    return changed


def uninstall() -> list[Path]:
    # Every candidate, not only rc_files(): ~/.bash_profile may have been deleted since.
    candidates = [*paths.shell_rc_files(), paths.bash_profile_file()]
    for rc in candidates:
        blocks.can_uninstall(rc, BLOCK_NAME)
    changed = [rc for rc in candidates if blocks.uninstall(rc, BLOCK_NAME)]
    for path, _ in _owned_files():
        if owned.remove(path):
            changed.append(path)
    folder = paths.shell_support_dir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return changed


@dataclass(frozen=True)
class Item:
    path: Path
    status: Status


def check() -> list[Item]:
    body = block_body()
    items = [Item(path, owned.check(path, text)) for path, text in _owned_files()]
    items += [Item(rc, blocks.check(rc, BLOCK_NAME, body)) for rc in rc_files()]
    return items
