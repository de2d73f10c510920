"""Remote or here: the one decision `exec`, `heavy` and the session host share.

Before any remote work `preflight` asks, cheapest first: is the backend usable at all
(credentials, client installed: no network), does the session host already know it is
offline (its circuit breaker), does the service answer within the reach deadline (reach.py).
Each "no" is an exception of ours; `local_or_raise` then says whether the caller may run the
work here instead: not when the user forced the backend (`--backend modal`, `--mode modal`)
and not when the policy refuses (`MODAL_OFFLOAD_WHEN_NO_BUDGET=refuse`,
`--no-local-fallback`), in which case the exception goes up with its documented exit code.

A budget that is used up takes the same road (`BudgetExhausted`), and so does an unreachable
service discovered while opening the session, before the command started; once a command
has started remotely it is never re-run here (it may have had effects), see gateway.py.
"""

from __future__ import annotations

from typing import Protocol

from .backends._base import Backend
from .config import Settings
from .errors import BackendUnavailable, BackendUnreachable, OffloadError


class Breaker(Protocol):
    """What preflight needs of the session host's circuit breaker (host/breaker.py)."""

    def offline_reason(self) -> str | None: ...

    def fresh(self) -> bool: ...

    def trip(self, why: str) -> None: ...

    def answered(self) -> None: ...


def preflight(backend: Backend, settings: Settings, breaker: Breaker | None = None) -> None:
    """Raise BackendUnavailable (or BackendUnreachable) when `backend` cannot take work now."""
    reason = backend.unavailable_reason()
    if reason:
        raise BackendUnavailable(reason)
    if breaker is not None:
        known = breaker.offline_reason()
        if known:
            raise BackendUnreachable(known)
        if breaker.fresh():
            return  # it answered a moment ago: spare the check's round trips
    why = backend.unreachable_reason(settings.reach_timeout_seconds)
    if why:
        if breaker is not None:
            breaker.trip(why)
        raise BackendUnreachable(why)
    if breaker is not None:
        breaker.answered()


def local_or_raise(exc: OffloadError, *, forced: bool, allowed: bool) -> str:
    """The line to print before running here instead ("running locally: ..."), or raise
    `exc` when the work may not run here: the backend was forced or fallback is off."""
    if forced or not allowed:
        raise exc
    return f"running locally: {exc.one_line()}"
