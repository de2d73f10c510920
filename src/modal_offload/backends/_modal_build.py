"""Building a session's image before its sandbox, so the user sees what a first build does.

On a terminal, Modal's own output manager (`modal.enable_output()`, modal/output.py:19) shows
build progress and logs, its stdout pointed at our stderr so the command's stdout stays the
command's. Elsewhere the log is kept, not shown (the gateway has said one line); when the
build fails, the error says which step failed and why, in one line, and where the whole log
is. Modal's output manager is process-global, so builds that show or keep output take turns
(the session host serves many clients); a build that Modal already cached is instant.

Like `_modal_image`, this module never imports `modal`: the backend passes it in.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import threading
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import BackendError
from ..fileio import atomic_write_text

_OUTPUT = threading.Lock()
_STEP = re.compile(r"^=> Step \d+: (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOISE = ("Terminating task", "Traceback", "View the build logs", "modal image logs")


def build_log_path(image_hash: str) -> Path:
    return paths.state_dir() / "images" / f"build-{image_hash}.log"


def failure_line(log: str) -> tuple[str, str]:
    """(failing step, its error) from a build log: the last `=> Step N:` header and the
    most telling line after it (an `ERROR`/`E:` line, else the last one)."""
    step, after = "", list[str]()
    for raw in _ANSI.sub("", log).splitlines():
        line = raw.strip()
        if m := _STEP.match(line):
            step, after = m.group(1), []
        elif line and not line.startswith(_NOISE):
            after.append(line)
    errors = [line for line in after if line.startswith(("ERROR", "E:", "error"))]
    return step, (errors[-1] if errors else after[-1] if after else "")


def build(modal: Any, image: Any, app: Any, *, show: bool, image_hash: str) -> Any:
    """`image.build(app)` with output shown (`show`) or kept; a failure becomes one line."""
    kept = io.StringIO()
    sink = sys.stderr if show else kept
    with _OUTPUT:
        try:
            with modal.enable_output(), contextlib.redirect_stdout(sink), \
                    contextlib.redirect_stderr(sink):
                return image.build(app)
        except modal.exception.ImageBuildError as exc:
            log = kept.getvalue()
            where = build_log_path(image_hash)
            with contextlib.suppress(OSError):
                atomic_write_text(where, log or f"{exc}\n")
            step, why = failure_line(log)
            what = f" at `{step}`" if step else ""
            because = f": {why}" if why else ""
            raise BackendError(f"the remote image {image_hash} failed to build{what}{because}",
                               "fix the workspace's dependencies or `[image]` settings "
                               "(`modal-offload env show` lists the steps); "
                               + (f"build log: {where}" if not show else
                                  "the build log is above")) from exc
