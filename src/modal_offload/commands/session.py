"""`modal-offload session status|stop`: the workspace's remote sessions."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace

from .. import config, workspace
from ..backends._base import Backend, Session, get_backend
from ..budget import Lease, Ledger
from ..gateway import session_spec
from ..image import identity


def _sessions(backend_name: str | None) -> tuple[Backend, list[Session]]:
    """The live sessions of this workspace: heavy and exec share one when sized alike."""
    ws = workspace.require()
    settings = config.load(ws.root, {"backend": backend_name} if backend_name else None)
    backend = get_backend(settings.backend)
    found: dict[str, Session] = {}
    for purpose in ("exec", "heavy"):
        spec = session_spec(settings, ws, purpose)
        # Also the session of the image before the last change, if no command moved it yet.
        last = identity.previous(ws.session_family(spec.cpu, spec.memory_mb, spec.gpu))
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


def _leases() -> dict[str, Lease]:
    """Leases by sandbox id; settled up to now first, so a status shows the cost so far."""
    ledger = Ledger()
    for lease in ledger.snapshot().leases:
        ledger.settle(lease.lease_id, time.time())
    return {lease.sandbox_id: lease for lease in ledger.snapshot().leases}


def status(backend: str | None = None, as_json: bool = False) -> int:
    chosen, sessions = _sessions(backend)
    infos = [s.info() for s in sessions]
    leases = _leases()
    now = time.time()
    for info in infos:
        lease = leases.get(info.id)
        if lease is not None:
            info.detail.update(
                lease_deadline=lease.deadline, charged_min=round(lease.charged_s / 60, 4),
                charged_usd=round(lease.charged_s * lease.usd_per_s, 6),
                outstanding_min=round(lease.outstanding_s / 60, 4))
    if as_json:
        print(json.dumps([vars(i) for i in infos], indent=2, default=str))
        return 0
    if not infos:
        print(f"no live {chosen.name} session for this workspace")
        return 0
    for info in infos:
        lease = leases.get(info.id)
        cost = ("" if lease is None else
                f", deadline in {_age(now - max(0.0, lease.deadline - now))}, charged "
                f"{lease.charged_s / 60:.2f} min ${lease.charged_s * lease.usd_per_s:.4f}")
        print(f"{info.backend} session {info.name} ({info.id}): "
              f"{'alive' if info.alive else 'dead'}, age {_age(info.created_at)}, "
              f"idle {_age(info.last_used_at)}{cost}")
    return 0


def stop(backend: str | None = None) -> int:
    chosen, sessions = _sessions(backend)
    ledger = Ledger()
    for session in sessions:
        session.terminate()
        for lease in ledger.snapshot().leases:
            if lease.sandbox_id == session.id:  # ended now: release what it did not use
                ledger.settle(lease.lease_id, time.time(), end=True)
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
