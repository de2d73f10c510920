"""`modal-offload shell-bootstrap install|check|uninstall`: routing in every new shell."""

from __future__ import annotations

from .. import config, paths, workspace
from ..install import completion, shell_bootstrap, shims, trust
from ..install.blocks import Status


def install() -> int:
    changed = shell_bootstrap.install()
    changed += completion.install()  # tab completion for bash and zsh (issue 20)
    for path in dict.fromkeys(changed):  # an rc file holding both blocks is named once
        print(f"updated {path}")
    if not changed:
        print("shell bootstrap already installed")
    ws = workspace.find()
    if ws is not None and trust.verdict(paths.shims_dir(ws.root)) is not None:
        # The bootstrap only activates workspaces whose shims the user installed (a marker
        # file a repository brought does not count): make this one work now.
        result = shims.install(ws.root, config.load(ws.root))
        print(f"installed {result.total} shim(s) in {paths.shims_dir(ws.root)}")
    print("open a new terminal (or `exec $SHELL -l`) for routing to take effect; "
          "`modal-offload doctor` checks it")
    return 0


def check() -> int:
    bad = 0
    for item in [*shell_bootstrap.check(), *completion.check()]:
        print(f"{item.status.value:8} {item.path}")
        bad += item.status is not Status.OK
    if bad:
        print("fix: modal-offload shell-bootstrap install")
    return 1 if bad else 0


def uninstall() -> int:
    # Completion first: its files live inside the folder shell_bootstrap removes when empty.
    changed = completion.uninstall()
    changed += shell_bootstrap.uninstall()
    for path in dict.fromkeys(changed):
        print(f"removed our part of {path}")
    if not changed:
        print("shell bootstrap was not installed")
    return 0
