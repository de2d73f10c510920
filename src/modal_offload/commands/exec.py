"""`modal-offload exec [--backend NAME] [--sync-back|--no-sync-back] (-- CMD ARGS | -c STR)`."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import config, workspace
from ..backends._base import get_backend
from ..errors import EXEC_FAILURE_EXIT, BadInput, BudgetExhausted, OffloadError
from ..gateway import Gateway, RemoteRun, RunReport, Streams, fd_sink
from ..local_run import exec_here, shell_argv
from ..remote_env import remote_environment
from ..ui import notice

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


def report_sync(report: RunReport) -> None:
    back = report.sync_back
    for text in report.notices:
        notice(text)
    if back is None:
        return
    for path, saved_as in back.conflicts:
        notice(f"conflict: {path} changed here while the command ran; "
               f"the remote version is saved as {saved_as}")
    for path, why in back.refused:
        notice(f"refused from remote: {path} ({why})")
    if back.skipped_over_cap:
        notice(f"sync back skipped {len(back.skipped_over_cap)} changed file(s) over the "
               f"MODAL_SYNC_MAX_BYTES cap; nothing was applied: "
               + ", ".join(back.skipped_over_cap[:5]))


def run(argv: Sequence[str], shell: str | None = None, backend: str | None = None,
        sync_back: bool | None = None) -> int:
    command = command_argv(argv, shell)
    if os.environ.get("MODAL_OFFLOAD_REMOTE") == "1":
        return exec_here(command)  # already inside a session: never nest
    ws = workspace.require()
    try:
        settings = config.load(ws.root, {"backend": backend} if backend else None)
        chosen = get_backend(settings.backend)
        reason = chosen.unavailable_reason()
        if reason:
            if backend is not None or settings.when_no_budget == "refuse":
                raise OffloadError(reason)
            notice(f"running locally: {reason}")
            return exec_here(command)
        gateway = Gateway(settings, chosen, ws)
        handle = RemoteRun()
        previous = {sig: signal.signal(sig, lambda s, _f: handle.forward_signal(s))
                    for sig in _FORWARDED}
        try:
            report = gateway.run(
                command, cwd_rel=ws.relative(Path.cwd()),
                env=remote_environment(os.environ, settings.forward_env),
                streams=Streams(sys.stdin.fileno() if _has_stdin() else None,
                                fd_sink(1), fd_sink(2)),
                sync_back=settings.sync_back if sync_back is None else sync_back,
                handle=handle, progress=sys.stderr.isatty())
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
    except BudgetExhausted as exc:
        if settings.when_no_budget == "refuse":
            notice(exc.one_line())
            return EXEC_FAILURE_EXIT
        notice(f"running locally: {exc.one_line()}")
        return exec_here(command)
    except OffloadError as exc:
        notice(exc.one_line())
        return EXEC_FAILURE_EXIT
    report_sync(report)
    return report.exit_code


def _has_stdin() -> bool:
    try:
        os.fstat(0)
    except OSError:
        return False
    return True
