"""What the host keeps loaded between commands: backends, open sessions, sync baselines and
workspace watchers. All of it is an optimisation: dropping any entry only costs time."""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..backends._base import Backend, Session, SessionInfo, SessionSpec, get_backend
from ..channel.client import Channel, ChannelSession
from ..config import Settings
from ..sync.journal import ManifestStore
from .breaker import Breaker
from .watcher import Watcher

SESSION_REUSE_SECONDS = 30.0
MAX_WATCHED_WORKSPACES = 16
# `MODAL_OFFLOAD_CHANNEL=0` in the host's environment: every command takes one backend
# exec, as before issue 17 (the benchmarks' baseline, and a way out should it misbehave).
CHANNEL_ENV = "MODAL_OFFLOAD_CHANNEL"


def channel_wanted() -> bool:
    return os.environ.get(CHANNEL_ENV, "1") != "0"


def channel_idle_seconds(idle_timeout: float) -> float:
    """How long an unused channel stays open. A running agent counts as activity for the
    provider's idle timeout, so the sandbox outlives the last command by this much plus
    its idle timeout: a fifth of that timeout keeps the overshoot at 20% (60 s of the
    default 300 s), while commands typed within a minute find the channel open."""
    return max(5.0, idle_timeout / 5)


@dataclass
class _Opened:
    session: Session
    deadline: float  # monotonic time the provider-side cap asked at open ends
    used: float


def _spec_key(spec: SessionSpec) -> tuple[object, ...]:
    # Everything but the timeout, which shrinks with the budget on every call.
    return (spec.name, spec.app_name, spec.cpu, spec.memory_mb, spec.idle_timeout_seconds,
            spec.apt_packages, spec.pip_packages, spec.resume_grace_seconds)


class WarmBackend(Backend):
    """A backend whose sessions, once opened, are reused for a short while without asking
    the provider again (a Modal lookup is a network round trip per command).

    A cached session is reused only while its provider-side cap ends no later than the
    budget now allows, so reuse never stretches the cap past the remaining minutes.
    """

    def __init__(self, inner: Backend, channels: bool | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self._lock = threading.Lock()
        self._opened: dict[tuple[object, ...], _Opened] = {}
        self._channels: dict[str, Channel] = {}  # by session id (issue 17)
        self.use_channels = channel_wanted() if channels is None else channels
        # Told when a session channel finds the service unreachable (the host's breaker,
        # set by the runner: host/breaker.py), so the next commands answer offline at once.
        self.on_unreachable: Callable[[str], None] | None = None

    def _with_channel(self, session: Session, spec: SessionSpec) -> Session:
        """`session` with its exec over the session channel, opened on first use (in the
        background, so it overlaps the sync up) and kept while the session is."""
        if not self.use_channels:
            return session
        with self._lock:
            channel = self._channels.get(session.id)
            if channel is None:
                channel = self._channels[session.id] = Channel(
                    session, channel_idle_seconds(spec.idle_timeout_seconds),
                    self._unreachable)
        channel.start()
        return ChannelSession(session, channel)

    def _unreachable(self, why: str) -> None:
        if self.on_unreachable is not None:
            self.on_unreachable(why)

    def _drop_channels(self, keep: set[str]) -> None:
        with self._lock:
            gone = [sid for sid in self._channels if sid not in keep]
            channels = [self._channels.pop(sid) for sid in gone]
        for channel in channels:
            channel.close()

    def unavailable_reason(self) -> str | None:
        return self.inner.unavailable_reason()

    def unreachable_reason(self, timeout: float) -> str | None:
        return self.inner.unreachable_reason(timeout)

    def open_session(self, spec: SessionSpec) -> Session:
        key, now = _spec_key(spec), time.monotonic()
        reuse_for = min(SESSION_REUSE_SECONDS, spec.idle_timeout_seconds / 2)
        reused = None
        with self._lock:
            hit = self._opened.get(key)
            if hit and now - hit.used < reuse_for and hit.deadline <= now + spec.timeout_seconds:
                hit.used = now
                # A copy: the caller that created it may still be reading `fresh`.
                reused = copy.copy(hit.session)
                reused.fresh = False
        if reused is not None:
            return self._with_channel(reused, spec)
        session = self.inner.open_session(spec)
        with self._lock:
            self._opened[key] = _Opened(session, now + spec.timeout_seconds, now)
            live = {o.session.id for o in self._opened.values()}
        self._drop_channels(live)  # a replaced sandbox's agent died with it
        return self._with_channel(session, spec)

    def end_session(self, session: Session) -> None:
        # Forgotten first: a command meanwhile opens a new sandbox instead of this one.
        with self._lock:
            for key in [k for k, o in self._opened.items() if o.session.id == session.id]:
                del self._opened[key]
            live = {o.session.id for o in self._opened.values()}
        self._drop_channels(live)
        session.terminate()

    def forget(self) -> None:
        """Drop cached sessions (after a backend error: the sandbox may be gone)."""
        with self._lock:
            self._opened.clear()
        self._drop_channels(set())

    def find_session(self, spec: SessionSpec) -> Session | None:
        return self.inner.find_session(spec)

    def list_sessions(self, app_name: str) -> list[SessionInfo]:
        return self.inner.list_sessions(app_name)

    def known_sessions(self) -> list[Session]:
        with self._lock:
            return [o.session for o in self._opened.values()]

    def session_names(self) -> list[str]:
        with self._lock:
            return sorted(o.session.name for o in self._opened.values())


class BaselineMemo:
    """Sync baseline stores kept for the host's life, one per baseline file: each keeps
    its manifest in memory between commands, lent out without a copy and checked against
    the files on disk (sync/journal.py), so a warm command neither parses nor copies 100k
    entries. A store whose session id or workspace changed is replaced (and its manifest
    dropped), so the memo holds at most one manifest per session name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, ManifestStore] = {}

    def store(self, path: Path, envelope: dict[str, object]) -> ManifestStore:
        with self._lock:
            store = self._items.get(str(path))
            if store is None or store.envelope != envelope:
                store = self._items[str(path)] = ManifestStore(path, envelope, durable=True)
            return store

    def clear(self) -> None:
        """Drop every kept baseline (the sessions ended): only memory, the files stay."""
        with self._lock:
            self._items.clear()


class Warm:
    """The host's caches, shared by every connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._backends: dict[str, WarmBackend] = {}
        self._watchers: OrderedDict[str, Watcher | None] = OrderedDict()
        self._breakers: dict[str, Breaker] = {}
        self.baselines = BaselineMemo()

    def breaker(self, backend: Backend, settings: Settings) -> Breaker:
        """The circuit breaker of `backend`'s service, one per backend for the host's life;
        the latest command's settings say how long it stays open and how long a probe waits."""
        with self._lock:
            breaker = self._breakers.get(backend.name)
            if breaker is None:
                timeout = settings.reach_timeout_seconds
                breaker = self._breakers[backend.name] = Breaker(
                    "Modal" if backend.name == "modal" else f"the {backend.name} backend",
                    lambda: backend.unreachable_reason(timeout), settings.offline_seconds)
            breaker.open_seconds = settings.offline_seconds
            return breaker

    def breakers(self) -> dict[str, dict[str, object]]:
        with self._lock:
            items = list(self._breakers.items())
        return {name: breaker.status() for name, breaker in items}

    def backend(self, chosen: Backend) -> WarmBackend:
        with self._lock:
            warm = self._backends.get(chosen.name)
            if warm is None:
                warm = self._backends[chosen.name] = WarmBackend(chosen)
            return warm

    def backend_named(self, name: str) -> WarmBackend:
        return self.backend(get_backend(name))

    def watcher(self, root: Path) -> Watcher | None:
        key = str(root)
        with self._lock:
            if key in self._watchers:
                self._watchers.move_to_end(key)
                return self._watchers[key]
            watcher = self._watchers[key] = Watcher.create(root)
            while len(self._watchers) > MAX_WATCHED_WORKSPACES:
                _, old = self._watchers.popitem(last=False)
                if old is not None:
                    old.close()
            return watcher

    def forget_sessions(self) -> None:
        with self._lock:
            backends = list(self._backends.values())
        for backend in backends:
            backend.forget()
        self.baselines.clear()

    def known_sessions(self) -> list[Session]:
        """Every session this host opened (alive or not): the sandboxes it settles."""
        with self._lock:
            backends = list(self._backends.values())
        return [s for b in backends for s in b.known_sessions()]

    def sessions(self) -> list[str]:
        with self._lock:
            backends = list(self._backends.values())
        return [name for b in backends for name in b.session_names()]

    def workspaces(self) -> Sequence[str]:
        with self._lock:
            return list(self._watchers)

    def close(self) -> None:
        with self._lock:
            watchers = [w for w in self._watchers.values() if w is not None]
            self._watchers.clear()
        for w in watchers:
            w.close()
        self.forget_sessions()  # closes the session channels: their agents hang up
