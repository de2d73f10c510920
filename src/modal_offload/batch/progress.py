"""Progress: a live table (rich) when stderr is a terminal, else one plain line per change."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from .runner import FINAL, RUNNING, TaskState


class Progress:
    def __init__(self, states: Sequence[TaskState], live: bool | None = None) -> None:
        self.states = states
        self.live = sys.stderr.isatty() if live is None else live
        self._lock = threading.Lock()
        self._display: Any = None

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title="modal-offload batch", expand=False)
        for column in ("task", "state", "where", "elapsed", "min", "exit"):
            table.add_column(column, justify="right" if column != "state" else "left")
        now = time.monotonic()
        for s in self.states:
            o = s.outcome
            table.add_row(str(s.task.index), s.state, s.where or "-",
                          f"{s.elapsed(now):.1f}s", f"{o.charged_min:.3f}" if o else "",
                          str(o.exit_code) if o else "")
        return table

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._display = Live(get_renderable=self._render, refresh_per_second=4,
                                 console=Console(stderr=True), transient=False)
            self._display.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._display is not None:
            self._display.__exit__(kind, exc, tb)

    def changed(self, state: TaskState) -> None:
        if self.live:
            return  # the live table redraws itself
        if state.state != RUNNING and state.state not in FINAL:
            return
        o = state.outcome
        text = f"task {state.task.index}: {state.state}"
        if state.state == RUNNING:
            text += f" ({state.where})"
        elif o is not None:
            text += f" exit {o.exit_code} in {state.elapsed():.1f}s"
            if o.error:
                text += f": {o.error}"
        with self._lock:
            print(f"modal-offload: {text}", file=sys.stderr, flush=True)
