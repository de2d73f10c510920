"""In-repo emulator of Modal's gRPC API, good enough for the real `modal` client to drive Sandboxes.

Pinned client: modal==1.6.4. See README.md in this directory.

Typical use::

    from testing.modal_emulator import EmulatorThread

    with EmulatorThread() as emu:
        env = emu.subprocess_env()          # for a subprocess running the real client / CLI
        ...
        emu.sandboxes()                     # what was created, with what options

In pytest, use the `modal_emulator` fixture from `testing.modal_emulator.pytest_fixtures`.
"""

from __future__ import annotations

from .faults import FaultInjector
from .objects import ImageRecord
from .records import CallRecord, ExecRecord, SandboxRecord
from .sandboxes import DEFAULT_WORKDIR, SANDBOX_HOME, map_sandbox_path
from .server import PINNED_MODAL_VERSION, TOKEN_ID, TOKEN_SECRET, ModalEmulator
from .thread import EmulatorThread, run_in_thread

__all__ = [
    "DEFAULT_WORKDIR",
    "PINNED_MODAL_VERSION",
    "SANDBOX_HOME",
    "TOKEN_ID",
    "TOKEN_SECRET",
    "CallRecord",
    "EmulatorThread",
    "ExecRecord",
    "FaultInjector",
    "ImageRecord",
    "ModalEmulator",
    "SandboxRecord",
    "map_sandbox_path",
    "run_in_thread",
]
