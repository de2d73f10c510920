"""Remote minutes a full or failing disk kept out of the ledger (issue #13).

Since issue 15 the sandbox's lease already holds its time in the ledger, so nothing new is
handed here; what an older version left behind is still written first by every remote run
(`Ledger.settle_pending`), which refuses with one line (`ChargePending`) while it cannot: the
cap cannot be checked until then.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import zlib
from pathlib import Path

from . import paths, private
from .budget import Ledger, finite_minutes, why
from .errors import BudgetExhausted, CorruptLedger, OffloadError
from .fileio import atomic_write_text, exclusive


class ChargePending(BudgetExhausted):
    """Remote time is not yet written to the ledger: the cap cannot be checked, so no
    remote run until it is (the local fallback applies, as for a used-up budget)."""


_MEMORY: dict[str, dict[str, float]] = {}  # ledger path -> source -> minutes (this process)
_MEMORY_LOCK = threading.Lock()
_SEQUENCE = itertools.count()


class PendingCharges:
    """Minutes a full or failing disk kept out of the ledger (issue #13).

    Each deferral is one small file, written once and never rewritten, in the runtime
    folder (private and verified; a tmpfs on most Linux systems, so a full home disk does
    not stop it): `pending-<ledger hash>-<pid>-<n>.json`. When even that cannot be written
    the minutes stay in this process's memory: the session host keeps them across
    commands; an in-process run says to add them by hand. `settle` writes them all to the
    ledger under its lock and then deletes exactly the files it read, so two processes
    never charge one deferral twice and a deferral made meanwhile is not lost.
    """

    def __init__(self, ledger_path: Path) -> None:
        self.ledger_path = str(ledger_path)
        key = zlib.crc32(self.ledger_path.encode(errors="surrogateescape"))
        self.folder = paths.runtime_dir_str()
        self.prefix = f"pending-{key:08x}-"

    def add(self, minutes: float, source: str) -> str:
        """Keep `minutes`; returns where, for the notice."""
        data = json.dumps({"ledger": self.ledger_path, "source": source, "min": minutes})
        name = f"{self.prefix}{os.getpid()}-{next(_SEQUENCE)}.json"
        try:
            private.make_private_dir(self.folder)
            atomic_write_text(Path(self.folder) / name, data + "\n", mode=0o600)
            return f"in {self.folder}"
        except (OSError, private.NotPrivate):
            pass
        with _MEMORY_LOCK:
            by_source = _MEMORY.setdefault(self.ledger_path, {})
            by_source[source] = by_source.get(source, 0.0) + minutes
        return ("in this process's memory (if it exits first, add them with "
                f"`modal-offload usage add {minutes:.2f}`)")

    def _files(self) -> list[tuple[Path, str, float]]:
        try:
            if not private.verify_private_dir(self.folder):
                return []
            names = [n for n in os.listdir(self.folder) if n.startswith(self.prefix)]
        except (OSError, private.NotPrivate):
            return []
        out = []
        for name in sorted(names):
            path = Path(self.folder) / name
            try:
                item = json.loads(path.read_text(encoding="utf-8"))
                if (isinstance(item, dict) and isinstance(item.get("source"), str)
                        and finite_minutes(item.get("min"))):
                    out.append((path, item["source"], float(item["min"])))
            except (OSError, ValueError):
                continue  # being written (not yet renamed into place) or foreign: skip
        return out

    def total(self) -> float:
        with _MEMORY_LOCK:
            memory = sum(_MEMORY.get(self.ledger_path, {}).values())
        return memory + sum(minutes for _, _, minutes in self._files())

    def settle(self, ledger: Ledger) -> None:
        """Write every pending charge to `ledger`, or raise ChargePending."""
        if not self.total():
            return
        try:
            with exclusive(ledger.path):
                files = self._files()
                with _MEMORY_LOCK:
                    memory = dict(_MEMORY.get(self.ledger_path, {}))
                charges = [(source, minutes) for _, source, minutes in files]
                charges += list(memory.items())
                ledger.charge_many(charges)
                with _MEMORY_LOCK:
                    left = _MEMORY.get(self.ledger_path, {})
                    for source, minutes in memory.items():
                        left[source] = left.get(source, 0.0) - minutes
                        if left[source] <= 1e-12:
                            del left[source]
                for path, _, _ in files:
                    path.unlink(missing_ok=True)
        except (OSError, OffloadError) as exc:
            if isinstance(exc, CorruptLedger):
                raise
            raise ChargePending(
                f"{self.total():.2f} min of remote time are not yet written to the usage "
                f"ledger {ledger.path} ({why(exc)})",
                "free disk space or fix the file, then run again") from None
