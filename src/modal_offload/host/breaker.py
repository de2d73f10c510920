"""The session host's circuit breaker for one backend (issue 19).

Closed: commands go remote (each after the usual reachability check). When a check or a
run finds the service unreachable the breaker opens: for `open_seconds` every routed command
is answered "offline" at once (the caller runs it locally with the once-an-hour notice),
without spending the check's deadline again, while a background thread probes every
`probe_every` seconds. The first probe that gets an answer closes it; the next command is
told once that Modal is reachable again. After `open_seconds` with no answer the breaker is
half-open: the next command checks for itself (bounded by the reach deadline) and re-opens
it if the service is still silent, so a host never stays "offline" on stale news.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .log import log

PROBE_EVERY_SECONDS = 2.0
# A service that answered this recently is not checked again before the next command: on a
# real network the check costs a TLS handshake (2-3 round trips), several times a warm
# command's own cost. A drop inside this window is met by the command itself (the client's
# retries, then a local run if it had not started: gateway.py / fallback.py).
FRESH_SECONDS = 5.0

Probe = Callable[[], "str | None"]  # None: the service answered; else why not


class Breaker:
    def __init__(self, name: str, probe: Probe, open_seconds: float,
                 probe_every: float = PROBE_EVERY_SECONDS) -> None:
        self.name = name
        self._probe = probe
        self.open_seconds = open_seconds
        self.probe_every = probe_every
        self._lock = threading.Lock()
        self._why: str | None = None
        self._opened_at = 0.0  # time.time(), for status
        self._open_until = 0.0  # monotonic
        self._recovered = False
        self._answered_at = float("-inf")  # monotonic
        self._prober: threading.Thread | None = None
        self._wake = threading.Event()

    # ------------------------------------------------------------------ used by preflight
    def offline_reason(self) -> str | None:
        """Why the service is known to be unreachable, while the breaker is open."""
        with self._lock:
            if self._why is not None and time.monotonic() < self._open_until:
                return self._why
            return None

    def trip(self, why: str) -> None:
        """Open (or keep open) the breaker: the service did not answer."""
        with self._lock:
            if self._why is None:
                log.info("%s unreachable: breaker open for %gs (%s)", self.name,
                         self.open_seconds, why)
                self._opened_at = time.time()
            self._why = why
            self._answered_at = float("-inf")
            self._open_until = time.monotonic() + self.open_seconds
            start = self._prober is None or not self._prober.is_alive()
            if start and self.open_seconds > 0:
                self._prober = threading.Thread(target=self._probe_until_answered,
                                                name=f"breaker-{self.name}", daemon=True)
                self._prober.start()

    def fresh(self) -> bool:
        """The service answered within FRESH_SECONDS and nothing failed since."""
        with self._lock:
            return self._why is None and time.monotonic() - self._answered_at < FRESH_SECONDS

    def answered(self) -> None:
        """The service answered (a check or a command): close the breaker."""
        with self._lock:
            self._answered_at = time.monotonic()
            if self._why is None:
                return
            log.info("%s reachable again: breaker closed", self.name)
            self._why = None
            self._recovered = True
        self._wake.set()

    # ------------------------------------------------------------------ reporting
    def take_recovered(self) -> str:
        """"Modal is reachable again" the first time it is asked after the breaker closed."""
        with self._lock:
            if not self._recovered:
                return ""
            self._recovered = False
        return f"{self.name} is reachable again: commands run remotely"

    def status(self) -> dict[str, Any]:
        with self._lock:
            if self._why is None:
                return {"name": self.name, "state": "closed"}
            left = self._open_until - time.monotonic()
            return {"name": self.name, "state": "open" if left > 0 else "half-open",
                    "why": self._why, "since": self._opened_at, "open_for": max(0.0, left)}

    # ------------------------------------------------------------------ background probe
    def _probe_until_answered(self) -> None:
        while True:
            self._wake.wait(self.probe_every)
            self._wake.clear()
            with self._lock:
                if self._why is None:
                    return
            why = self._probe()
            if why is None:
                self.answered()
                return
            with self._lock:
                if self._why is None:
                    return
                self._why = why  # still offline; the window is not extended by probes
