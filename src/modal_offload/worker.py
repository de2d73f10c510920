"""The remote end of a heavy call: payload JSON on stdin, result JSON on stdout.

Run as `python -m modal_offload.worker --entry module:function` in the session's copy of
the workspace, so the user's edited `primary_compute.py` arrives by the ordinary delta
sync, with no image rebuild. Anything the user's code prints goes to stderr, so stdout
carries only the result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any


def load_entry(entry: str, folder: str) -> Callable[[dict[str, Any]], Any]:
    module_name, _, attr = entry.partition(":")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = importlib.import_module(module_name)
    func: Callable[[dict[str, Any]], Any] = getattr(module, attr or "do_heavy_stuff")
    return func


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modal_offload.worker")
    parser.add_argument("--entry", default="primary_compute:do_heavy_stuff")
    args = parser.parse_args(argv)
    payload = json.loads(sys.stdin.buffer.read() or b"{}")
    result_fd = os.dup(1)
    os.dup2(2, 1)  # the user's prints go to stderr; fd 1 is ours alone
    sys.stdout = sys.stderr
    result = load_entry(args.entry, os.getcwd())(payload)
    with os.fdopen(result_fd, "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
