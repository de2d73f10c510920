"""`modal-offload route [--json] CMD [ARGS...]`: where CMD would run, and which rule decided."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import config, localonly, paths, routing, workspace
from ..errors import BadInput


def run(argv: Sequence[str], as_json: bool = False) -> int:
    rest = list(argv)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if not rest:
        raise BadInput("no command given", "use `modal-offload route CMD [ARGS...]`")
    ws = workspace.find()
    settings = config.load(ws.root if ws else None)
    decision = routing.decide(rest[0], settings, in_workspace=ws is not None)
    name = routing.command_name(rest[0])
    shim = paths.shims_dir(ws.root) / name if ws else None
    shimmed = bool(shim and shim.is_file())
    if as_json:
        out: dict[str, str | None] = {**decision.as_dict(),
                                      "workspace": str(ws.root) if ws else None,
                                      "shim": str(shim) if shimmed else None}
        print(json.dumps(out, indent=2))
        return 0
    print(f"{decision.command}: {decision.where} ({decision.rule}: {decision.why})")
    if decision.where == "remote" and ws is not None:
        from ..image import cache, programs

        known = programs.known(settings.backend, cache.current(ws.root, settings).hash)
        if known is not None and name not in known:
            print(f"note: {name} is not in the remote image, so it runs locally "
                  f'(`[image] apt = ["{name}"]` in .modal-offload.toml adds it)')
    if decision.where == "local" and name in localonly.RUNS_OTHER_COMMANDS \
            and decision.rule != "user-local-only":
        print(f"note: {name} runs other commands, so an agent hook routes `{name} ...` like "
              "the command it runs (docs/agent-hooks.md)")
    if decision.rule in ("default-remote", "user-remote") and ws and not shimmed:
        print(f"note: no shim for {name} yet: `modal-offload shims refresh` adds it; until "
              f"then run it as `modal-offload exec -- {name} ...`")
    return 0
