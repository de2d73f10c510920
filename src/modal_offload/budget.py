"""The daily ledger of remote minutes.

File format (version 2), a superset of the original toolkit's `{"day", "used_min"}`::

    {"version": 2, "day": "2026-11-25", "used_min": 12.5,
     "history": {"2026-11-25": {"used_min": 12.5, "by_source": {"heavy": 10.0, "manual": 2.5},
                                "notes": [{"at": "...", "min": 2.5, "note": "notebook"}],
                                "resets": [{"at": "...", "discarded_min": 3.0}]}}}

`day`/`used_min` always mirror today's entry so the original scripts keep reading it.
Every read-modify-write holds an exclusive lock and replaces the file atomically; a file
that does not parse, or has a field of the wrong type, is never taken as zero (that would
lift the cap): it is a corrupt ledger (exit 5). A version-2 file whose history lacks the
day at the top level (an older tool updated only `day`/`used_min`) keeps that figure.

A charge that cannot be written (a full or failing disk) is retried, then kept pending
(`pending.py`) and the next remote run refuses until it is written (#13).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths, private
from .errors import CorruptLedger, OffloadError
from .fileio import atomic_write_text, exclusive

CHARGE_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.2

VERSION = 2
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


@dataclass(frozen=True)
class DayUsage:
    day: str
    used_min: float
    by_source: dict[str, float]


@dataclass(frozen=True)
class Snapshot:
    today: str
    used_min: float
    history: dict[str, DayUsage]

    def remaining(self, budget_min: float) -> float:
        return max(0.0, budget_min - self.used_min)

    def last_days(self, count: int = 7) -> list[DayUsage]:
        today = dt.date.fromisoformat(self.today)
        out = []
        for back in range(count):
            day = (today - dt.timedelta(days=back)).isoformat()
            out.append(self.history.get(day, DayUsage(day, 0.0, {})))
        return out


def _minutes(value: Any) -> float | None:
    """`value` as minutes when it is a finite number >= 0 (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        minutes = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return minutes if math.isfinite(minutes) and minutes >= 0 else None


def finite_minutes(value: Any) -> bool:
    return _minutes(value) is not None


def _check_minutes_map(value: Any, what: str) -> None:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and finite_minutes(v) for k, v in value.items()):
        raise ValueError(f"{what} is not an object of minutes")


def _check_list_of_objects(value: Any, what: str) -> None:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{what} is not a list of objects")


def _check_entry(key: Any, entry: Any) -> None:
    """Every field a writer later reads or updates has the type it expects."""
    if not (isinstance(key, str) and _DAY.match(key) and isinstance(entry, dict)
            and finite_minutes(entry.get("used_min"))):
        raise ValueError(f"history entry {key!r} is malformed")
    if "by_source" in entry:
        _check_minutes_map(entry["by_source"], f"history {key} by_source")
    for name in ("notes", "resets"):
        if name in entry:
            _check_list_of_objects(entry[name], f"history {key} {name}")


def _validate(data: Any) -> dict[str, Any]:
    """Return the data upgraded to the current version, or raise ValueError."""
    if not isinstance(data, dict):
        raise ValueError("top level is not an object")
    day, used = data.get("day"), _minutes(data.get("used_min"))
    if not isinstance(day, str) or not _DAY.match(day):
        raise ValueError("'day' is missing or not YYYY-MM-DD")
    if used is None:
        raise ValueError("'used_min' is missing or not a number >= 0")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"'version' is not an integer: {version!r}")
    if version == 1:
        # The original toolkit's file: one day, no history. Upgrade in this one place.
        return {"version": VERSION, "day": day, "used_min": used,
                "history": {day: {"used_min": used, "by_source": {}}}}
    if version != VERSION:
        raise ValueError(f"unknown version {version!r} (this tool reads up to {VERSION})")
    history = data.get("history")
    if not isinstance(history, dict):
        raise ValueError("'history' is not an object")
    for key, entry in history.items():
        _check_entry(key, entry)
    # The top-level figure mirrors its day's entry; when they disagree (an older tool
    # rewrote only the top level, or the entry is missing) the larger one counts: a cap is
    # never lifted by a lost history entry.
    entry = history.setdefault(day, {"used_min": 0.0, "by_source": {}})
    entry["used_min"] = max(float(entry["used_min"]), used)
    return data


class Ledger:
    def __init__(self, path: Path | None = None, clock: Clock = _now) -> None:
        self.path = path or paths.usage_file()
        self.clock = clock

    def _today(self) -> str:
        return self.clock().date().isoformat()

    def _corrupt(self, why: str) -> CorruptLedger:
        return CorruptLedger(
            f"usage ledger {self.path} is corrupt ({why})",
            "run `modal-offload usage reset` to move it aside and start clean",
        )

    def _load(self) -> dict[str, Any]:
        try:
            # Not through a symlink planted in a shared folder, never another user's file:
            # whoever owns the ledger decides our cap (#13).
            fd = private.open_owned(str(self.path), os.O_RDONLY)
            with open(fd, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            return {"version": VERSION, "day": self._today(), "used_min": 0.0, "history": {}}
        except private.NotPrivate as exc:
            raise CorruptLedger(f"usage ledger refused: {exc}",
                                "or set PRIMARY_MODAL_USAGE_FILE to a file of yours") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptLedger(
                f"usage ledger {self.path} is unreadable ({exc.__class__.__name__})",
                "fix its permissions, or run `modal-offload usage reset`",
            ) from None
        try:
            return _validate(json.loads(text))
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise self._corrupt(str(exc).split("\n")[0]) from None
        except RecursionError:
            raise self._corrupt("nested too deeply") from None

    def _store(self, data: dict[str, Any]) -> None:
        today = self._today()
        entry = data["history"].get(today, {"used_min": 0.0, "by_source": {}})
        data.update(version=VERSION, day=today, used_min=entry["used_min"])
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def _snapshot(self, data: dict[str, Any]) -> Snapshot:
        history = {
            day: DayUsage(day, float(e["used_min"]), dict(e.get("by_source") or {}))
            for day, e in data["history"].items()
        }
        today = self._today()
        used = history[today].used_min if today in history else 0.0
        return Snapshot(today=today, used_min=used, history=history)

    def snapshot(self) -> Snapshot:
        # Writers replace the file atomically, so a lock-free read sees a whole file.
        return self._snapshot(self._load())

    def charge(self, minutes: float, source: str, note: str | None = None) -> Snapshot:
        if not (math.isfinite(minutes) and minutes >= 0):
            raise OffloadError(f"refusing to charge {minutes!r} minutes", "minutes must be >= 0")
        with exclusive(self.path):
            data = self._load()
            today = self._today()
            entry = data["history"].setdefault(today, {"used_min": 0.0, "by_source": {}})
            entry["used_min"] = float(entry["used_min"]) + minutes
            by_source = entry.setdefault("by_source", {})
            by_source[source] = float(by_source.get(source, 0.0)) + minutes
            if note is not None:
                entry.setdefault("notes", []).append(
                    {"at": self.clock().isoformat(timespec="seconds"), "min": minutes,
                     "note": note})
            self._store(data)
            return self._snapshot(data)

    def charge_many(self, charges: list[tuple[str, float]]) -> None:
        """Charge several (source, minutes) at once; the caller holds the ledger's lock."""
        data = self._load()
        entry = data["history"].setdefault(self._today(), {"used_min": 0.0, "by_source": {}})
        by_source = entry.setdefault("by_source", {})
        for source, minutes in charges:
            entry["used_min"] = float(entry["used_min"]) + minutes
            by_source[source] = float(by_source.get(source, 0.0)) + minutes
        self._store(data)

    def settle_pending(self) -> None:
        """Before a remote run: write charges a failing disk kept pending, or refuse
        (ChargePending) while they cannot be written."""
        from .pending import PendingCharges

        PendingCharges(self.path).settle(self)

    def refund(self, minutes: float, source: str) -> Snapshot:
        """Give back prepaid minutes a meter did not use (never below zero)."""
        if not (math.isfinite(minutes) and minutes >= 0):
            raise OffloadError(f"refusing to refund {minutes!r} minutes", "minutes must be >= 0")
        with exclusive(self.path):
            data = self._load()
            entry = data["history"].setdefault(self._today(), {"used_min": 0.0, "by_source": {}})
            by_source = entry.setdefault("by_source", {})
            back = min(minutes, float(by_source.get(source, 0.0)), float(entry["used_min"]))
            entry["used_min"] = float(entry["used_min"]) - back
            by_source[source] = float(by_source.get(source, 0.0)) - back
            self._store(data)
            return self._snapshot(data)

    def reset(self) -> tuple[Snapshot, Path | None]:
        """Zero today's usage. A corrupt file is moved aside (returned) instead."""
        with exclusive(self.path):
            try:
                data = self._load()
            except CorruptLedger:
                stamp = self.clock().strftime("%Y%m%d-%H%M%S")
                aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
                self.path.replace(aside)
                data = {"version": VERSION, "day": self._today(), "used_min": 0.0,
                        "history": {}}
                self._store(data)
                return self._snapshot(data), aside
            today = self._today()
            entry = data["history"].setdefault(today, {"used_min": 0.0, "by_source": {}})
            # Keep what was discarded so a reset is visible in the history, not a silent loss.
            entry.setdefault("resets", []).append(
                {"at": self.clock().isoformat(timespec="seconds"),
                 "discarded_min": entry["used_min"]})
            entry["used_min"] = 0.0
            entry["by_source"] = {}
            self._store(data)
            return self._snapshot(data), None


def elapsed_clock() -> float:
    """Seconds on a clock that keeps counting while the laptop sleeps (issue 19: a remote
    command runs on with the lid closed, and the meter must charge that time too).
    time.monotonic() stops during suspend on Linux (CLOCK_MONOTONIC) and macOS
    (mach_absolute_time); CLOCK_BOOTTIME (Linux) and clock_gettime(CLOCK_MONOTONIC) on macOS
    (mach_continuous_time; unverified here) do not."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is None and sys.platform == "darwin":
        clock = time.CLOCK_MONOTONIC
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


class Meter:
    """Charges remote time while it runs, one interval in advance, and settles at the end.

    Each heartbeat charges up to `now + interval`, so a client killed without warning has
    already paid for the time up to its death (give or take one ledger write); `stop()`
    settles the exact elapsed time, refunding the unused prepaid part. Over-charging by at
    most one interval on a hard kill is the safe side for a cap.
    """

    def __init__(self, ledger: Ledger, source: str, interval: float) -> None:
        self.ledger = ledger
        self.source = source
        self.interval = interval
        self._lock = threading.Lock()
        self._started = 0.0
        self._paid_until = 0.0  # monotonic time up to which the ledger has been charged
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.deferred: str | None = None  # the notice when the final charge was kept pending

    @property
    def charged_min(self) -> float:
        return (self._paid_until - self._started) / 60.0

    def _settle(self, until: float) -> None:
        with self._lock:
            delta = until - self._paid_until
            if delta > 0:
                self.ledger.charge(delta / 60.0, self.source)
            elif delta < 0:
                self.ledger.refund(-delta / 60.0, self.source)
            # Advance only after a successful write, so a failed beat is retried, not lost.
            self._paid_until = until

    def _beat(self) -> None:
        while True:
            try:
                self._settle(elapsed_clock() + self.interval)
            except Exception as exc:  # keep beating; the next beat covers this delta
                self.error = exc
            if self._stop.wait(self.interval):
                return

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def start(self) -> Meter:
        self._started = self._paid_until = elapsed_clock()
        self._thread = threading.Thread(target=self._beat, name="ledger-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> float:
        """Settle the exact elapsed time. Never raises for a ledger that cannot be written:
        the charge is retried, then kept pending and `deferred` says so in one line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        until = elapsed_clock()
        for attempt in range(CHARGE_ATTEMPTS):
            try:
                self._settle(until)
                return self.charged_min
            except (OSError, OffloadError) as exc:
                self.error = exc
                if attempt + 1 < CHARGE_ATTEMPTS:
                    time.sleep(RETRY_PAUSE_SECONDS * (attempt + 1))
        reason = why(self.error)
        delta_min = (until - self._paid_until) / 60.0
        self._paid_until = until
        if delta_min <= 0:  # an unused prepaid part we could not give back: over-charged
            return self.charged_min
        from .pending import PendingCharges

        where = PendingCharges(self.ledger.path).add(delta_min, self.source)
        self.deferred = (f"{delta_min:.2f} min of remote time could not be written to "
                         f"{self.ledger.path} ({reason}); kept {where}, and remote runs refuse "
                         "until it is written")
        return self.charged_min

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def why(exc: BaseException | None) -> str:
    """A failed ledger write's reason, short enough for a one-line notice."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, OffloadError):
        return exc.message
    return exc.__class__.__name__ if exc is not None else "unknown error"
