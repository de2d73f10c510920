"""`modal-offload heavy`: run do_heavy_stuff(payload) remotely or locally; print the result."""

from __future__ import annotations

import json
from pathlib import Path

from ..heavy import parse_payload, read_payload_file
from ..heavy import run_heavy as _run_heavy


def run(payload: str | None = None, payload_file: str | None = None, mode: str | None = None,
        allow_local_fallback: bool = True, gpu: str | None = None) -> int:
    if payload_file is not None:
        data = read_payload_file(Path(payload_file))
    else:
        data = parse_payload(payload if payload is not None else "{}")
    result = _run_heavy(data, allow_local_fallback=allow_local_fallback, force_mode=mode,
                        gpu=gpu)
    print(json.dumps(result, indent=2))
    return 0
