"""The per-user session host: a warm background process that runs routed commands (#8).

Split so that the thin client (`client.py`, `protocol.py`, `lifecycle.py`) imports only
cheap standard-library modules; the host side (`server.py`, `runner.py`, `warm.py`,
`watcher.py`) may import anything.

Decisions worth knowing:
- TTY: the remote process always has pipes (as in the in-process path). What follows the
  client's terminal: the host uses the client's own fds (passed with SCM_RIGHTS), so output
  lands on the terminal unbuffered and `isatty()` on them (the progress-bar decision) is
  the client's; the remote environment (TERM, COLUMNS, NO_COLOR, FORCE_COLOR...) is built
  from the client's environment, not the host's; a command routed to run locally is
  exec'd by the client itself and so sees the real terminal.
- Versions: each exec carries a fingerprint (package version, protocol, Python version and
  the size/mtime of every source file); a host with another one retires at once and the
  client starts a fresh host. Hosts are per configuration: the socket name hashes HOME,
  XDG_*, MODAL_OFFLOAD_*_DIR, the ledger path and Modal credentials settings.
- Sync: `WorkspaceSync.up(changed=...)` takes the watcher's set of possibly changed paths
  (None = walk everything); baselines stay in memory while their file is unchanged.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the thin client's path: no typing here
if TYPE_CHECKING:
    from collections.abc import Mapping

_TRUE = ("1", "true", "yes", "on")


def host_enabled(environ: Mapping[str, str]) -> bool:
    """On unless MODAL_OFFLOAD_HOST says otherwise; an invalid value goes the slow path,
    whose config loader explains it. Here, not in client.py, so the in-process path asks
    without loading the client's socket modules (issue 17)."""
    value = environ.get("MODAL_OFFLOAD_HOST")
    return value is None or value.strip().lower() in _TRUE
