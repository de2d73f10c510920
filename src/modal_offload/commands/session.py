"""`modal-offload session status|stop`: the workspace's remote sessions."""

from __future__ import annotations

import json
import time

from .. import config, workspace
from ..backends._base import SessionInfo, get_backend
from ..gateway import session_spec


def _infos(backend_name: str | None) -> tuple[str, list[SessionInfo]]:
    ws = workspace.require()
    settings = config.load(ws.root, {"backend": backend_name} if backend_name else None)
    backend = get_backend(settings.backend)
    found: dict[str, SessionInfo] = {}
    for purpose in ("exec", "heavy"):
        spec = session_spec(settings, ws, purpose, settings.max_min_per_day)
        if spec.name in found:
            continue
        session = backend.find_session(spec)
        if session is not None:
            found[spec.name] = session.info()
    return backend.name, list(found.values())


def _age(since: float | None) -> str:
    if since is None:
        return "?"
    seconds = max(0, int(time.time() - since))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def status(backend: str | None = None, as_json: bool = False) -> int:
    name, infos = _infos(backend)
    if as_json:
        print(json.dumps([vars(i) for i in infos], indent=2, default=str))
        return 0
    if not infos:
        print(f"no live {name} session for this workspace")
        return 0
    for info in infos:
        charged = info.detail.get("charged_min")
        extra = f", charged {float(charged):.2f} min" if isinstance(charged, (int, float)) else ""
        print(f"{info.backend} session {info.name} ({info.id}): "
              f"{'alive' if info.alive else 'dead'}, age {_age(info.created_at)}, "
              f"idle {_age(info.last_used_at)}{extra}")
    return 0


def stop(backend: str | None = None) -> int:
    ws = workspace.require()
    settings = config.load(ws.root, {"backend": backend} if backend else None)
    chosen = get_backend(settings.backend)
    stopped = 0
    for purpose in ("exec", "heavy"):
        session = chosen.find_session(session_spec(settings, ws, purpose,
                                                   settings.max_min_per_day))
        if session is not None:
            session.terminate()
            print(f"stopped {chosen.name} session {session.name}")
            stopped += 1
    if not stopped:
        print(f"no live {chosen.name} session for this workspace")
    return 0
