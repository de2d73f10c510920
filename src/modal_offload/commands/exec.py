"""`modal-offload exec [--backend B] [--sync-back|--no-sync-back] [-t|-T] (-- CMD ARGS | -c STR)`.

Arguments are parsed by `exec_args.parse`, the one parser shared with the host's fast path.

The decisions (`plan`, `budget_fallback`, `sync_notices`) are shared with the session
host (host/runner.py), which runs the same command for a thin client: both paths must
route, fall back and report identically.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import config, fallback, terminal, workspace
from ..backends._base import Backend, PtySpec, get_backend
from ..errors import (
    EXEC_FAILURE_EXIT,
    BackendTooSlow,
    BackendUnavailable,
    BackendUnreachable,
    BadInput,
    BudgetExhausted,
    CorruptLedger,
    OffloadError,
    StoppedWaiting,
)
from ..exec_args import ExecArgs
from ..gateway import Gateway, RemoteRun, RunReport, Streams, fd_sink
from ..image.programs import MissingProgram
from ..local_run import exec_here, shell_argv
from ..remote_env import remote_environment
from ..ui import notice, once

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def command_argv(argv: Sequence[str], shell: str | None) -> list[str]:
    rest = list(argv)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if shell is not None:
        if rest:
            raise BadInput("give either -c 'STRING' or -- CMD ARGS, not both", "pick one")
        return shell_argv(shell)
    if not rest:
        raise BadInput("no command given", "use `exec -- CMD ARGS` or `exec -c 'STRING'`")
    return rest


@dataclass
class Plan:
    """Where a command goes: `backend` set means remote; else run here after `local_notice`."""

    settings: config.Settings
    backend: Backend | None
    local_notice: str = ""


BreakerFor = Callable[[Backend, config.Settings], fallback.Breaker]


def plan(ws: workspace.Workspace, backend: str | None,
         environ: Mapping[str, str] | None = None, gpu: str | None = None,
         breaker_for: BreakerFor | None = None) -> Plan:
    """Settings and backend for a command in `ws` (fallback.preflight: credentials, the
    host's breaker, a reachability check); raises OffloadError when it may neither run
    remotely nor fall back to a local run."""
    overrides = {"backend": backend, "gpu": gpu}  # None: not given on the command line
    settings = config.load(ws.root, overrides, environ)
    chosen = get_backend(settings.backend)
    try:
        fallback.preflight(chosen, settings,
                           breaker_for(chosen, settings) if breaker_for else None)
    except BackendUnavailable as exc:
        return Plan(settings, None, local_notice(settings, exc, forced=backend is not None))
    return Plan(settings, chosen)


def local_notice(settings: config.Settings, exc: OffloadError, *, forced: bool = False) -> str:
    """The notice for running locally instead ("" when it was said within the hour, so an
    agent's hundred offline commands get one line); raises `exc` when that is not allowed
    (`--backend` given, or MODAL_OFFLOAD_WHEN_NO_BUDGET=refuse)."""
    return once(fallback.local_or_raise(exc, forced=forced,
                                        allowed=settings.when_no_budget != "refuse"))


def budget_fallback(settings: config.Settings, exc: OffloadError,
                    forced: bool = False) -> str | None:
    """`local_notice` for a failure met on the way (budget used up, service unreachable
    before the command started), or None: refuse."""
    try:
        return local_notice(settings, exc, forced=forced)
    except OffloadError:
        return None


def missing_fallback(settings: config.Settings, exc: MissingProgram) -> str | None:
    """The notice for running a program the remote image lacks here ("" when said within
    the hour), or None: refuse (`[routing] when_missing_program = "refuse"`)."""
    if settings.when_missing_program == "refuse":
        return None
    return once(f"running {exc.program} locally: {exc.one_line()}")


def failure_exit(exc: OffloadError) -> int:
    """125 when exec itself failed, so 1..124 stay the command's own codes; a corrupt
    ledger keeps its documented code 5 (#13), what `usage show` says for the same file."""
    return exc.exit_code if isinstance(exc, (CorruptLedger, StoppedWaiting)) else (
        EXEC_FAILURE_EXIT)


def sync_notices(report: RunReport) -> list[str]:
    out = list(report.notices)
    if report.sync_up is not None:
        for refusal in report.sync_up.refused:
            out.append(f"not sent: the remote refused {refusal.path} ({refusal.reason})")
    back = report.sync_back
    if back is None:
        return out
    for conflict in back.conflicts:
        saved = (f"; the remote version is saved as {conflict.remote_copy}"
                 if conflict.remote_copy else "")
        out.append(f"conflict: kept the local {conflict.path} ({conflict.reason}){saved}")
    for refusal in back.refused:
        out.append(f"refused from remote: {refusal.path} ({refusal.reason})")
    if back.skipped_over_cap:
        out.append(f"sync back skipped {len(back.skipped_over_cap)} changed file(s) over the "
                   f"MODAL_SYNC_MAX_BYTES cap; nothing was applied: "
                   + ", ".join(back.skipped_over_cap[:5]))
    return out


def report_sync(report: RunReport) -> None:
    for text in sync_notices(report):
        notice(text)


def pty_spec(request: Mapping[str, object] | None) -> PtySpec | None:
    """The remote terminal a client asked for (`terminal.pty_request`), or None."""
    if request is None:
        return None
    rows, cols = request.get("rows", 24), request.get("cols", 80)
    return PtySpec(rows=int(rows) if isinstance(rows, int) else 24,
                   cols=int(cols) if isinstance(cols, int) else 80,
                   term=str(request.get("term", "")), colorterm=str(request.get("colorterm", "")))


def run(args: ExecArgs) -> int:
    command = command_argv(args.command, args.shell)
    if os.environ.get("MODAL_OFFLOAD_REMOTE") == "1":
        return exec_here(command)  # already inside a session: never nest
    ws = workspace.require()
    settings: config.Settings | None = None
    sync_back = args.sync_back
    pty = (pty_spec(terminal.pty_request(os.environ, 1, 0)) if terminal.wants_pty(args.tty)
           else None)
    try:
        chosen = plan(ws, args.backend, gpu=args.gpu)
        settings = chosen.settings
        if chosen.backend is None:
            notice(chosen.local_notice)
            return exec_here(command)
        gateway = Gateway(settings, chosen.backend, ws)
        handle = RemoteRun()
        # SIGHUP (the terminal closed) is a hang-up: the remote group is killed after a
        # short grace and nothing is synced back (gateway.RemoteRun).
        previous = {sig: signal.signal(sig, lambda s, _f: handle.forward_signal(s))
                    for sig in _FORWARDED}
        if pty is not None:  # the remote terminal follows the window (where it can)
            previous[signal.SIGWINCH] = signal.signal(
                signal.SIGWINCH, lambda _s, _f: handle.resize(*terminal.window_size(1, 0)))
        # Raw mode before any thread starts (the watchdog forks) and until the run ends, so
        # the notices below print on a normal terminal again.
        raw = (terminal.RawMode(0) if pty is not None and terminal.isatty(0)
               else contextlib.nullcontext())
        try:
            with raw:
                report = gateway.run(
                    command, cwd_rel=ws.relative(Path.cwd()),
                    env=remote_environment(os.environ, settings.forward_env),
                    streams=Streams(sys.stdin.fileno() if _has_stdin() else None,
                                    fd_sink(1), fd_sink(2)),
                    sync_back=settings.sync_back if sync_back is None else sync_back,
                    handle=handle, progress=sys.stderr.isatty(), pty=pty)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
    except (BudgetExhausted, BackendUnreachable, BackendTooSlow) as exc:
        # Met before the command started (gateway.py); rejected credentials still fail.
        forced = args.backend is not None and not isinstance(exc, BudgetExhausted)
        local = budget_fallback(settings, exc, forced) if settings is not None else None
        if local is None:
            notice(exc.one_line())
            return EXEC_FAILURE_EXIT
        notice(local)
        return exec_here(command)
    except MissingProgram as exc:
        local = missing_fallback(settings, exc) if settings is not None else None
        if local is None:
            notice(exc.one_line())
            return EXEC_FAILURE_EXIT
        notice(local)
        return exec_here(command)
    except OffloadError as exc:
        notice(exc.one_line())
        return failure_exit(exc)
    report_sync(report)
    return report.exit_code


def _has_stdin() -> bool:
    try:
        os.fstat(0)
    except OSError:
        return False
    return True
