"""The host's own log: what happened to it, for the user who wonders why (issue #13).

Kept in the state folder (not the runtime folder, which a reboot empties), one file per
host configuration, rotated by size so it never grows without bound. It records starts,
restarts, retirements, rejected peers, dropped connections and internal errors, with
timestamps. Never a secret: no environment values and no arguments, only the program name
(argv[0]) of a command and the uid/pid of a peer.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from .. import paths

LOG_MAX_BYTES = 1 << 20
LOG_BACKUPS = 3
LOGGER_NAME = "modal_offload.host"

log = logging.getLogger(LOGGER_NAME)


def log_path(config_key: str) -> Path:
    return paths.state_dir() / f"host-{config_key}.log"


def setup(path: Path, max_bytes: int = LOG_MAX_BYTES,
          backups: int = LOG_BACKUPS) -> logging.Handler | None:
    """Send the host logger to a rotated file at `path`; None (and no file logging) when
    it cannot be opened: a log must never keep the host from serving."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        path.chmod(0o600)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(
        "%(asctime)s pid=%(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


def teardown(handler: logging.Handler | None) -> None:
    if handler is not None:
        log.removeHandler(handler)
        handler.close()
