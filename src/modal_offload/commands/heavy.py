"""`modal-offload heavy`: run do_heavy_stuff(payload) remotely or locally; print the result."""

from __future__ import annotations

import json
from pathlib import Path

from ..heavy import parse_payload, read_payload_file
from ..heavy import run_heavy as _run_heavy


def run_map(path: str, parallel: int | None, mode: str | None, gpu: str | None = None) -> int:
    """`heavy --map payloads.jsonl`: one JSON result per line, in input order."""
    from ..errors import BATCH_EXIT, BadInput
    from ..heavy import run_heavy_map

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path} ({exc.__class__.__name__})",
                       "give a JSON Lines file: one payload object per line") from None
    payloads = [parse_payload(line, f"{path} line {n}")
                for n, line in enumerate(lines, 1) if line.strip()]
    results = run_heavy_map(payloads, parallel=parallel, force_mode=mode, gpu=gpu)
    for result in results:
        print(json.dumps(result), flush=True)
    return BATCH_EXIT if any("error" in r for r in results) else 0


def run(payload: str | None = None, payload_file: str | None = None, mode: str | None = None,
        allow_local_fallback: bool = True, gpu: str | None = None,
        map_file: str | None = None, parallel: int | None = None) -> int:
    if map_file is not None:
        return run_map(map_file, parallel, mode, gpu)
    if payload_file is not None:
        data = read_payload_file(Path(payload_file))
    else:
        data = parse_payload(payload if payload is not None else "{}")
    result = _run_heavy(data, allow_local_fallback=allow_local_fallback, force_mode=mode,
                        gpu=gpu)
    print(json.dumps(result, indent=2))
    return 0
