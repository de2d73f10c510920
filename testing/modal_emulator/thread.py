"""Run a `ModalEmulator` on its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from .server import ImageMode, ModalEmulator

_START_TIMEOUT = 30.0


class EmulatorThread:
    """Context manager owning a background thread that serves a `ModalEmulator`.

    >>> with EmulatorThread() as emu:                       # doctest: +SKIP
    ...     subprocess.run([...], env=emu.subprocess_env())
    ...     emu.sandboxes()

    Attribute access falls through to the `ModalEmulator`, so `emu.kill_sandbox(...)`,
    `emu.fail_next(...)`, `emu.sandboxes()` etc. work directly on this object.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        images: ImageMode = "host",
        rtt_ms: float = 0.0,
    ) -> None:
        path = (
            Path(tempfile.mkdtemp(prefix="modal-emulator-")) if base_dir is None else Path(base_dir)
        )
        # Only a directory we created is ours to delete (reset() may point base_dir elsewhere).
        self._owned_dir = path if base_dir is None else None
        self.emulator = ModalEmulator(path, port=port, images=images, rtt_ms=rtt_ms)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on EmulatorThread itself.
        if name == "emulator":
            raise AttributeError(name)
        return getattr(self.emulator, name)

    @property
    def url(self) -> str:
        return self.emulator.url

    def env(self) -> dict[str, str]:
        return self.emulator.env()

    def start(self) -> EmulatorThread:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="modal-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("modal emulator did not start in time")
        if self._startup_error is not None:
            raise RuntimeError("modal emulator failed to start") from self._startup_error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.emulator.start())
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            # Let cancelled handler tasks unwind before closing the loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Terminate all sandboxes, shut the server down and join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            self._cleanup_dir()
            return
        try:
            asyncio.run_coroutine_threadsafe(self.emulator.stop(), loop).result(
                timeout=_START_TIMEOUT
            )
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_START_TIMEOUT)
            self._thread = None
            self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_in_thread(
    base_dir: str | os.PathLike[str] | None = None,
    *,
    port: int = 0,
    images: ImageMode = "host",
    rtt_ms: float = 0.0,
) -> EmulatorThread:
    """Start an emulator in a background thread; call `.stop()` (or use it as a context manager)."""
    return EmulatorThread(base_dir, port=port, images=images, rtt_ms=rtt_ms).start()
