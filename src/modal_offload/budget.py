"""The daily ledger of remote minutes and dollars, and the leases of live sandboxes.

File format (version 3), a superset of the original toolkit's `{"day", "used_min"}`::

    {"version": 3, "day": "2026-11-25", "used_min": 12.5, "used_usd": 0.41,
     "history": {"2026-11-25": {"used_min": 12.5, "usd": 0.41,
                                "by_source": {"heavy": 10.0, "manual": 2.5},
                                "by_source_usd": {"heavy": 0.41},
                                "by_workspace": {"ab12cd34": {"min": 10.0, "usd": 0.41}},
                                "notes": [...], "resets": [...]}},
     "leases": {"<lease id>": {"name": "mo-...", "sandbox_id": "sb-...", "source": "exec",
                               "workspace": "ab12cd34", "created": 1764..., "deadline": ...,
                               "charged_until": ..., "usd_per_s": 0.0003}}}

`day`/`used_min` always mirror today's entry so the original scripts keep reading it.
A *lease* is held by every live sandbox, from its creation up to its provider-side deadline
(issue 15): the part not yet charged (`deadline - charged_until`) is outstanding, and a new
sandbox only gets `budget - used - outstanding`, so all live sandboxes together can never be
billed past the cap even if every client dies. Settling moves `charged_until` forward (never
back), so a sandbox's life is charged once whoever settles it; ending releases the rest.
Times in leases are unix seconds (wall clock: several processes share them).

Every read-modify-write holds an exclusive lock and replaces the file atomically; a file
that does not parse, or has a field of the wrong type, is never taken as zero (that would
lift the cap): it is a corrupt ledger (exit 5). Older versions are upgraded in `_validate`,
the one place that knows them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths, private
from .errors import CorruptLedger, OffloadError
from .fileio import atomic_write_text, exclusive

CHARGE_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.2

VERSION = 3
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


@dataclass(frozen=True)
class DayUsage:
    day: str
    used_min: float
    by_source: dict[str, float]
    usd: float = 0.0
    by_source_usd: dict[str, float] = field(default_factory=dict)
    by_workspace: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Lease:
    """A live (or not yet settled) sandbox's claim on the budget, up to its deadline."""

    lease_id: str
    name: str
    sandbox_id: str
    source: str
    workspace: str
    created: float
    deadline: float
    charged_until: float
    usd_per_s: float

    @property
    def outstanding_s(self) -> float:
        return max(0.0, self.deadline - self.charged_until)

    @property
    def charged_s(self) -> float:
        return max(0.0, self.charged_until - self.created)


@dataclass(frozen=True)
class Snapshot:
    today: str
    used_min: float
    history: dict[str, DayUsage]
    used_usd: float = 0.0
    leases: tuple[Lease, ...] = ()

    @property
    def outstanding_min(self) -> float:
        return sum(lease.outstanding_s for lease in self.leases) / 60

    @property
    def outstanding_usd(self) -> float:
        return sum(lease.outstanding_s * lease.usd_per_s for lease in self.leases)

    def remaining(self, budget_min: float) -> float:
        """Minutes no live sandbox holds yet: what a new sandbox can be granted."""
        return max(0.0, budget_min - self.used_min - self.outstanding_min)

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
    if "usd" in entry and not finite_minutes(entry["usd"]):
        raise ValueError(f"history {key} usd is not a number >= 0")
    for name in ("by_source", "by_source_usd"):
        if name in entry:
            _check_minutes_map(entry[name], f"history {key} {name}")
    if "by_workspace" in entry:
        by_ws = entry["by_workspace"]
        if not isinstance(by_ws, dict):
            raise ValueError(f"history {key} by_workspace is not an object")
        for ws, totals in by_ws.items():
            _check_minutes_map(totals, f"history {key} by_workspace {ws}")
    for name in ("notes", "resets"):
        if name in entry:
            _check_list_of_objects(entry[name], f"history {key} {name}")


_LEASE_TEXT = ("name", "sandbox_id", "source", "workspace")
_LEASE_NUMBERS = ("created", "deadline", "charged_until", "usd_per_s")


def _check_leases(leases: Any) -> None:
    if not isinstance(leases, dict):
        raise ValueError("'leases' is not an object")
    for key, lease in leases.items():
        if not (isinstance(lease, dict)
                and all(isinstance(lease.get(f), str) for f in _LEASE_TEXT)
                and all(finite_minutes(lease.get(f)) for f in _LEASE_NUMBERS)):
            raise ValueError(f"lease {key!r} is malformed")


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
                "history": {day: {"used_min": used, "by_source": {}}}, "leases": {}}
    if version not in (2, VERSION):
        raise ValueError(f"unknown version {version!r} (this tool reads up to {VERSION})")
    history = data.get("history")
    if not isinstance(history, dict):
        raise ValueError("'history' is not an object")
    for key, entry in history.items():
        _check_entry(key, entry)
    if version == 2:
        data["leases"] = {}  # version 2 had no leases: nothing was outstanding
    _check_leases(data.get("leases"))
    # The top-level figure mirrors its day's entry; when they disagree (an older tool
    # rewrote only the top level, or the entry is missing) the larger one counts: a cap is
    # never lifted by a lost history entry.
    entry = history.setdefault(day, {"used_min": 0.0, "by_source": {}})
    entry["used_min"] = max(float(entry["used_min"]), used)
    return data


def _add(entry: dict[str, Any], source: str, minutes: float, usd: float = 0.0,
         workspace: str | None = None) -> None:
    entry["used_min"] = float(entry["used_min"]) + minutes
    by_source = entry.setdefault("by_source", {})
    by_source[source] = float(by_source.get(source, 0.0)) + minutes
    if usd:
        entry["usd"] = float(entry.get("usd", 0.0)) + usd
        by_usd = entry.setdefault("by_source_usd", {})
        by_usd[source] = float(by_usd.get(source, 0.0)) + usd
    if workspace:
        totals = entry.setdefault("by_workspace", {}).setdefault(workspace,
                                                                  {"min": 0.0, "usd": 0.0})
        totals["min"] = float(totals.get("min", 0.0)) + minutes
        totals["usd"] = float(totals.get("usd", 0.0)) + usd


class NoLease(OffloadError):
    """No budget is left for a new sandbox once live sandboxes' leases are counted."""


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
            return {"version": VERSION, "day": self._today(), "used_min": 0.0, "history": {},
                    "leases": {}}
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
        data.setdefault("leases", {})
        data.update(version=VERSION, day=today, used_min=entry["used_min"],
                    used_usd=float(entry.get("usd", 0.0)))
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def _snapshot(self, data: dict[str, Any]) -> Snapshot:
        history = {
            day: DayUsage(day, float(e["used_min"]), dict(e.get("by_source") or {}),
                          float(e.get("usd", 0.0)), dict(e.get("by_source_usd") or {}),
                          {ws: dict(t) for ws, t in (e.get("by_workspace") or {}).items()})
            for day, e in data["history"].items()
        }
        today = self._today()
        day = history.get(today)
        leases = tuple(Lease(lease_id=key, **{f: v[f] for f in _LEASE_TEXT + _LEASE_NUMBERS})
                       for key, v in sorted(data.get("leases", {}).items()))
        return Snapshot(today=today, used_min=day.used_min if day else 0.0, history=history,
                        used_usd=day.usd if day else 0.0, leases=leases)

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
            _add(entry, source, minutes)
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
        for source, minutes in charges:
            _add(entry, source, minutes)
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

    # Leases (issue 15). `now` is wall-clock unix seconds, passed in so tests can script it.

    def reserve(self, *, lease_id: str, name: str, source: str, workspace: str,
                want_s: float, usd_per_s: float, budget_min: float,
                budget_usd: float | None, now: float) -> float:
        """Grant a new sandbox up to `want_s` seconds of life: at most what neither usage
        nor live sandboxes' leases hold, in minutes and (if capped) dollars. Returns the
        seconds granted (whole seconds, the provider's unit); raises NoLease when none."""
        with exclusive(self.path):
            data = self._load()
            snap = self._snapshot(data)
            free_s = (budget_min - snap.used_min - snap.outstanding_min) * 60
            why = (f"{max(0.0, budget_min - snap.used_min):.2f} of {budget_min:g} min left "
                   f"today, {snap.outstanding_min:.2f} held by {len(snap.leases)} live "
                   "sandbox(es)")
            if budget_usd is not None and usd_per_s > 0:
                free_usd = budget_usd - snap.used_usd - snap.outstanding_usd
                if free_usd / usd_per_s < free_s:
                    free_s = free_usd / usd_per_s
                    why = (f"${max(0.0, budget_usd - snap.used_usd):.2f} of ${budget_usd:g} "
                           f"left today, ${snap.outstanding_usd:.2f} held by "
                           f"{len(snap.leases)} live sandbox(es)")
            granted = float(math.floor(min(want_s, free_s)))
            if granted < 1:
                raise NoLease(f"no budget for a new sandbox ({why})",
                              "wait for a live sandbox to end (`modal-offload session stop` "
                              "ends this workspace's), or raise the daily budget")
            data["leases"][lease_id] = {
                "name": name, "sandbox_id": "", "source": source, "workspace": workspace,
                "created": now, "deadline": now + granted, "charged_until": now,
                "usd_per_s": usd_per_s}
            self._store(data)
            return granted

    def bind(self, lease_id: str, sandbox_id: str, created: float, *,
             deadline: float | None = None) -> None:
        """The sandbox exists: its life counts from `created`, up to `deadline` (by default
        the granted length from `created`: the provider's timeout counts from creation)."""
        with exclusive(self.path):
            data = self._load()
            lease = data["leases"].get(lease_id)
            if lease is None or lease["sandbox_id"]:
                return  # ended meanwhile, or bound already: binding happens once
            length = float(lease["deadline"]) - float(lease["created"])
            # Whatever was already charged stays charged (never charged twice).
            charged = max(created, float(lease["charged_until"]))
            end = created + length if deadline is None else deadline
            lease.update(sandbox_id=sandbox_id, created=min(created, charged),
                         charged_until=charged, deadline=max(end, charged))
            self._store(data)

    def settle(self, lease_id: str, until: float, *, end: bool = False) -> float:
        """Charge the lease's sandbox for its life up to `until` (never past its deadline,
        never twice); `end` also releases what it did not use. Returns seconds charged."""
        with exclusive(self.path):
            data = self._load()
            lease = data["leases"].get(lease_id)
            if lease is None:
                return 0.0  # already ended by someone else
            seconds = max(0.0, min(until, float(lease["deadline"]))
                          - float(lease["charged_until"]))
            if seconds > 0:
                entry = data["history"].setdefault(self._today(),
                                                   {"used_min": 0.0, "by_source": {}})
                _add(entry, lease["source"], seconds / 60,
                     seconds * float(lease["usd_per_s"]), lease["workspace"])
                lease["charged_until"] = float(lease["charged_until"]) + seconds
            if end:
                del data["leases"][lease_id]
            if seconds > 0 or end:
                self._store(data)
            return seconds

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


def why(exc: BaseException | None) -> str:
    """A failed ledger write's reason, short enough for a one-line notice."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, OffloadError):
        return exc.message
    return exc.__class__.__name__ if exc is not None else "unknown error"
