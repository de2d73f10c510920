"""The only way commands talk to the user besides their own output: one-line notices."""

from __future__ import annotations

import sys


def notice(message: str) -> None:
    print(f"modal-offload: {message}", file=sys.stderr, flush=True)
