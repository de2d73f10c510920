"""User-facing errors: each becomes one line on stderr and a fixed exit code.

Every exit code of our own is defined here, once, in EXIT_CODES: the exception classes, the
CLI's top-level handler and `modal-offload --help` all read it (the README repeats it).
"""

from __future__ import annotations

# Plain ints (no enum): the session host's thin client imports this module on every routed
# command (issue #8).
INTERNAL_EXIT = 1
BAD_INPUT_EXIT = 2
BUDGET_EXIT = 3
BACKEND_EXIT = 4
LEDGER_EXIT = 5
# `batch`: some task failed, found no budget, was cancelled, or two tasks changed one file.
BATCH_EXIT = 6
# `exec` could not run the command (our own failure, as `docker run` does), so that 1..124
# and 126+ always mean the command's own status.
EXEC_FAILURE_EXIT = 125
INTERRUPTED_EXIT = 130  # SIGINT / Ctrl-C
BROKEN_PIPE_EXIT = 141  # stdout closed early (`| head`), as a shell reports SIGPIPE
TERMINATED_EXIT = 143  # SIGTERM: the default action, so the shell reports 128+15

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (INTERNAL_EXIT, "internal error (traceback with --debug or MODAL_OFFLOAD_DEBUG=1)"),
    (BAD_INPUT_EXIT, "bad input: arguments, payload, configuration"),
    (BUDGET_EXIT, "daily budget used up and local fallback not allowed"),
    (BACKEND_EXIT, "backend unavailable (credentials, not installed) or failed"),
    (LEDGER_EXIT, "the usage ledger is corrupt or unreadable"),
    (BATCH_EXIT, "`batch`: a task failed or conflicted (see .modal-offload/batch/<id>/)"),
    (EXEC_FAILURE_EXIT, "`exec` could not run the command (any other code is the command's)"),
    (INTERRUPTED_EXIT, "interrupted (Ctrl-C)"),
    (BROKEN_PIPE_EXIT, "output pipe closed early"),
    (TERMINATED_EXIT, "terminated (SIGTERM)"),
)


class OffloadError(Exception):
    """Base class: `message` is one line; `hint` says what to do."""

    exit_code = INTERNAL_EXIT

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class BadInput(OffloadError):
    exit_code = BAD_INPUT_EXIT


class ConfigError(BadInput):
    pass


class BudgetExhausted(OffloadError):
    exit_code = BUDGET_EXIT


class BackendUnavailable(OffloadError):
    """The backend cannot be used at all (no credentials, not installed)."""

    exit_code = BACKEND_EXIT


class BackendError(OffloadError):
    """The backend failed while working (RPC error, sandbox died)."""

    exit_code = BACKEND_EXIT


class BackendUnreachable(BackendUnavailable):
    """The backend's service cannot be reached right now (offline, stalled, partitioned):
    before a command starts, `auto` runs it locally instead (fallback.py)."""


class BackendTooSlow(BackendUnavailable):
    """Opening the session took longer than its bound: like unreachable, `auto` runs the
    command locally instead, but the service did answer (the host's breaker stays closed)."""


class StoppedWaiting(OffloadError):
    """The user interrupted a wait for the backend (Ctrl-C while the image builds)."""

    exit_code = INTERRUPTED_EXIT


class CorruptLedger(OffloadError):
    exit_code = LEDGER_EXIT


class SyncError(OffloadError):
    exit_code = BACKEND_EXIT


class TooManyFiles(SyncError):
    """A tree past `sync_max_files`: refused before anything was applied remotely."""


def exit_codes_help() -> str:
    """The table `modal-offload --help` ends with."""
    return "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES)
