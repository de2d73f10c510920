"""run_heavy: route a heavy Python call to a remote session or run it here.

Modes: `local` runs here; `modal` runs remotely or fails clearly; `auto` runs remotely
while credentials and budget allow, otherwise here, saying why in one line on stderr.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import config, workspace
from .backends._base import Session, get_backend
from .budget import Ledger
from .errors import BackendError, BackendUnavailable, BadInput, BudgetExhausted, OffloadError
from .gateway import Gateway, Streams, fd_sink
from .image.mismatch import KEEP_BYTES, mismatch
from .remote_env import remote_environment
from .ui import notice

MODES = config.HEAVY_MODES
Notify = Callable[[str], None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_payload(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadInput(f"payload must be a JSON object, got {type(payload).__name__}",
                       'pass e.g. \'{"iterations":24000000,"workers":6}\'')
    if "iterations" in payload and not (_is_int(payload["iterations"])
                                        and payload["iterations"] >= 0):
        raise BadInput(f"iterations must be a whole number >= 0, got {payload['iterations']!r}",
                       "fix the payload")
    if "workers" in payload and not (_is_int(payload["workers"]) and payload["workers"] >= 1):
        raise BadInput(f"workers must be a whole number >= 1, got {payload['workers']!r}",
                       "fix the payload")
    if "salt" in payload and not _is_int(payload["salt"]):
        raise BadInput(f"salt must be a whole number, got {payload['salt']!r}", "fix the payload")
    return payload


def parse_payload(text: str, source: str = "--payload") -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} "
                       f"column {exc.colno})", 'quote it, e.g. PAYLOAD=\'{"iterations":1000}\'') \
            from None
    return validate_payload(data)


def read_payload_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read payload file {path} ({exc.__class__.__name__})",
                       "check the path") from None
    return parse_payload(text, str(path))


def _root() -> Path:
    ws = workspace.find()
    return ws.root if ws else Path.cwd().resolve()


def run_local(payload: dict[str, Any], settings: config.Settings, root: Path) -> dict[str, Any]:
    from .worker import load_entry

    try:
        func = load_entry(settings.heavy_entry, str(root))
    except (ImportError, AttributeError) as exc:
        raise BadInput(f"cannot load {settings.heavy_entry} from {root} ({exc})",
                       "run from the workspace holding primary_compute.py, or set "
                       "MODAL_OFFLOAD_HEAVY_ENTRY=module:function") from None
    result = func(payload)
    if not isinstance(result, dict):
        result = {"result": result}
    return result


def run_remote(payload: dict[str, Any], settings: config.Settings, root: Path,
               gateway: Gateway, notify: Notify = notice) -> dict[str, Any]:
    out = io.BytesIO()
    err = bytearray()
    to_stderr = fd_sink(sys.stderr.fileno())

    def collect(data: bytes) -> None:
        out.write(data)

    def show_and_keep(data: bytes) -> None:
        to_stderr(data)
        err.extend(data)
        del err[:-KEEP_BYTES]

    def argv(session: Session) -> list[str]:
        return session.module_argv("modal_offload.worker", "--entry", settings.heavy_entry)

    report = gateway.run(argv, cwd_rel=".", env=remote_environment(os.environ,
                                                                   settings.forward_env),
                         streams=Streams(json.dumps(payload).encode(), collect, show_and_keep),
                         sync_back=settings.sync_back, purpose="heavy",
                         progress=sys.stderr.isatty())
    # What the run has to say (a charge kept pending, a failed sync back, #13); a timeout's
    # own line, the last, goes into the error below.
    for text in report.notices[:-1] if report.timed_out else report.notices:
        notify(text)
    if report.timed_out:
        error = BudgetExhausted if report.limited_by == "budget" else BackendError
        raise error(f"{settings.heavy_entry} {report.notices[-1]}",
                    "raise the limit or run with --mode local")
    if report.exit_code != 0:
        env_failure = mismatch(bytes(err), settings.heavy_entry)
        if env_failure is not None:
            raise env_failure  # a BackendError: auto mode runs it here instead
        raise OffloadError(f"{settings.heavy_entry} failed remotely (exit {report.exit_code})",
                           "see its error output above")
    try:
        result = json.loads(out.getvalue())
    except ValueError:
        raise BackendError("the remote worker returned no result",
                           "see its error output above") from None
    return result if isinstance(result, dict) else {"result": result}


def run_heavy(payload: dict[str, Any], max_min_per_day: float | None = None,
              allow_local_fallback: bool = True, force_mode: str | None = None,
              *, notify: Notify = notice, ledger: Ledger | None = None,
              gpu: str | None = None) -> dict[str, Any]:
    mode = force_mode or os.environ.get("PRIMARY_MODAL_MODE") or "auto"
    if mode not in MODES:
        raise BadInput(f"unknown mode {mode!r}", f"use one of: {', '.join(MODES)}")
    if max_min_per_day is not None and (
            not isinstance(max_min_per_day, (int, float)) or math.isnan(max_min_per_day)
            or max_min_per_day < 0):
        raise BadInput(f"max_min_per_day must be >= 0, got {max_min_per_day!r}",
                       "pass minutes per day")
    payload = validate_payload(payload)
    root = _root()
    overrides: dict[str, Any] = {} if max_min_per_day is None else {
        "max_min_per_day": max_min_per_day}
    if gpu is not None:
        overrides["gpu"] = gpu  # validated by config (pricing.parse_gpu): a one-line error
    settings = config.load(root, overrides)
    ledger = ledger or Ledger()
    snapshot = ledger.snapshot()  # a corrupt ledger stops every mode but local, loudly
    execution = "local"

    def fall_back(why: OffloadError) -> None:
        if mode == "modal" or not allow_local_fallback:
            raise why
        notify(f"running locally: {why.one_line()}")

    result: dict[str, Any] | None = None
    if mode != "local":
        backend = get_backend(settings.backend)
        reason = backend.unavailable_reason()
        if reason:
            fall_back(BackendUnavailable(reason))
        elif (settings.max_min_per_day - snapshot.used_min) * 60 < 1:
            fall_back(BudgetExhausted(
                f"daily budget of {settings.max_min_per_day:g} remote minutes is used up",
                "raise PRIMARY_MODAL_MAX_MIN_PER_DAY or wait for tomorrow"))
        else:
            gateway = Gateway(settings, backend, workspace.Workspace(root), ledger)
            try:
                result = run_remote(payload, settings, root, gateway, notify)
                execution = "modal" if backend.name == "modal" else f"remote-{backend.name}"
            except (BackendError, BudgetExhausted) as exc:
                fall_back(exc)
    if result is None:
        result = run_local(payload, settings, root)
    after = ledger.snapshot()
    result.update(execution=execution, tracked_modal_min_today=round(after.used_min, 4),
                  daily_budget_min=settings.max_min_per_day)
    return result
