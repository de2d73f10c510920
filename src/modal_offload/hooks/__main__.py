"""Entry point: `python -m modal_offload.hooks AGENT --runner PATH`; see __init__."""

from __future__ import annotations

import sys

from . import run


def main() -> int:
    try:
        stdin_text = sys.stdin.read()
    except Exception as exc:  # unreadable stdin (bad encoding, closed): block, never pass
        stdin_text = f"<unreadable: {exc}>"
    out, err, code = run(sys.argv[1:], stdin_text)
    if out:
        sys.stdout.write(out + "\n")
    if err:
        sys.stderr.write(err)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SystemExit:
        raise
    except BaseException as exc:  # last resort: exit 2 blocks in every agent that uses codes
        sys.stderr.write(f"modal-offload hook crashed ({exc!r}); command blocked\n")
        raise SystemExit(2) from None
