"""`modal-offload shims install|refresh|uninstall|list`: PATH shims in `.modal-shims`."""

from __future__ import annotations

from .. import config, paths, workspace
from ..errors import BadInput
from ..install import shims


def _report(verb: str, result: shims.Result, folder: str) -> None:
    print(f"{verb} {folder}: {result.total} routed command(s); {len(result.written)} written, "
          f"{len(result.removed)} removed")
    if result.kept_foreign:
        print(f"left alone (not ours): {', '.join(result.kept_foreign)}")
    if result.dropped:
        print(f"no longer trusted (changed or gone since their install): "
              f"{', '.join(result.dropped)}")


def install() -> int:
    ws = workspace.require()
    result = shims.install(ws.root, config.load(ws.root))
    _report("installed", result, str(paths.shims_dir(ws.root)))
    print("activate: source scripts/activate_modal_only.sh, or `modal-offload shell-bootstrap "
          "install` once for every new shell in this workspace")
    return 0


def refresh() -> int:
    """Pick up executables installed since, drop vanished ones (cheap when nothing changed)."""
    ws = workspace.require()
    if not paths.shims_marker(ws.root).is_file():
        raise BadInput(f"no shims installed in {ws.root}", "run `modal-offload shims install`")
    _report("refreshed", shims.install(ws.root, config.load(ws.root)),
            str(paths.shims_dir(ws.root)))
    return 0


def uninstall() -> int:
    ws = workspace.require()
    removed = shims.uninstall(ws.root)
    print(f"removed {len(removed)} shim(s) from {paths.shims_dir(ws.root)}")
    return 0


def list() -> int:  # named after the subcommand (cli.py dispatches by name)
    ws = workspace.require()
    names = shims.installed(ws.root)
    for name in names:
        print(name)
    if not names:
        print(f"no shims in {paths.shims_dir(ws.root)}: run `modal-offload shims install`")
    return 0
