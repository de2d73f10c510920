"""`modal-offload session status|stop`: the workspace's remote sessions."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace

from .. import config, workspace
from ..backends._base import Backend, Session, get_backend
from ..gateway import session_spec
from ..image import identity


def _sessions(backend_name: str | None) -> tuple[Backend, list[Session]]:
    """The live sessions of this workspace: heavy and exec share one when sized alike."""
    ws = workspace.require()
    settings = config.load(ws.root, {"backend": backend_name} if backend_name else None)
    backend = get_backend(settings.backend)
    found: dict[str, Session] = {}
    for purpose in ("exec", "heavy"):
        spec = session_spec(settings, ws, purpose, settings.max_min_per_day)
        # Also the session of the image before the last change, if no command moved it yet.
        last = identity.previous(ws.session_family(spec.cpu, spec.memory_mb))
        names = [spec.name, *([last["session"]] if last else [])]
        for name in names:
            if name not in found and (session := backend.find_session(
                    replace(spec, name=name))) is not None:
                found[name] = session
    return backend, list(found.values())


def _age(since: float | None) -> str:
    if since is None:
        return "?"
    seconds = max(0, int(time.time() - since))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def status(backend: str | None = None, as_json: bool = False) -> int:
    chosen, sessions = _sessions(backend)
    infos = [s.info() for s in sessions]
    if as_json:
        print(json.dumps([vars(i) for i in infos], indent=2, default=str))
        return 0
    if not infos:
        print(f"no live {chosen.name} session for this workspace")
        return 0
    for info in infos:
        charged = info.detail.get("charged_min")
        extra = f", charged {float(charged):.2f} min" if isinstance(charged, (int, float)) else ""
        print(f"{info.backend} session {info.name} ({info.id}): "
              f"{'alive' if info.alive else 'dead'}, age {_age(info.created_at)}, "
              f"idle {_age(info.last_used_at)}{extra}")
    return 0


def stop(backend: str | None = None) -> int:
    chosen, sessions = _sessions(backend)
    for session in sessions:
        session.terminate()
        print(f"stopped {chosen.name} session {session.name}")
    _host_forgets()
    if not sessions:
        print(f"no live {chosen.name} session for this workspace")
    return 0


def _host_forgets() -> None:
    """The session host caches open sessions for a few seconds; a stopped one must never be
    handed to the next `exec` (#13). No host running: nothing cached."""
    from ..host import lifecycle, protocol
    from ..host.client import request

    # A host we cannot reach, or that is not ours, has nothing of ours cached to forget.
    with contextlib.suppress(OSError, protocol.ProtocolError, lifecycle.HostUnavailable):
        request({"op": "forget"})
