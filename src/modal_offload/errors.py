"""User-facing errors: each becomes one line on stderr and a fixed exit code.

Exit codes (documented in the README):
  1  unexpected internal error (traceback only with --debug)
  2  bad input: arguments, payload, configuration
  3  daily budget exhausted and local fallback not allowed
  4  backend unavailable: missing or rejected credentials, backend error
  5  the ledger is corrupt or unreadable
  125 `exec` could not run the command (our own failure, as `docker run` does),
      so that 1..124 and 126+ always mean the remote command's own status
  130 interrupted (SIGINT), 143 terminated (SIGTERM)
"""

from __future__ import annotations


class OffloadError(Exception):
    """Base class: `message` is one line; `hint` says what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class BadInput(OffloadError):
    exit_code = 2


class ConfigError(BadInput):
    pass


class BudgetExhausted(OffloadError):
    exit_code = 3


class BackendUnavailable(OffloadError):
    """The backend cannot be used at all (no credentials, not installed)."""

    exit_code = 4


class BackendError(OffloadError):
    """The backend failed while working (RPC error, sandbox died)."""

    exit_code = 4


class CorruptLedger(OffloadError):
    exit_code = 5


class SyncError(OffloadError):
    exit_code = 4


EXEC_FAILURE_EXIT = 125
