"""One sandbox's container: an overlay of its image's layers plus its own upper dir, in its own
mount and pid namespaces, chrooted; execs enter it with nsenter(1).

Pid 1 is nsinit.py in ``serve`` mode. It holds every mount of the container in a private mount
namespace, so ending it (closing its stdin) kills every process of the sandbox and drops every
mount at once; the host's mount table is never touched. The host reaches the container's files
through ``/proc/<pid 1>/root`` (the kernel resolves it inside the container's namespace), which
is what `SandboxRecord.root` points at while the sandbox runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .cache import LayerCache
from .layers import LayerState, container_env, host_binds, nsinit_argv

_READY_TIMEOUT = 30.0


class ContainerError(Exception):
    """The container could not be started."""


class Container:
    def __init__(self, cache: LayerCache, image: LayerState, scratch: Path) -> None:
        self.cache = cache
        self.image = image
        self.scratch = scratch  # upper/work dirs; removed when the container ends
        self.init_pid: int | None = None  # host pid of the container's pid 1
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def root(self) -> Path:
        """The container's "/" as seen from the host (valid while it runs)."""
        if self.init_pid is None:
            raise ContainerError("container is not running")
        return Path(f"/proc/{self.init_pid}/root")

    async def start(self) -> None:
        for name in ("upper", "work", "merged"):
            (self.scratch / name).mkdir(parents=True, exist_ok=True)
        config = {
            "mode": "serve",
            "layers_dir": str(self.cache.layers),
            "lowers": [f"{lid}/diff" for lid in self.image.lowers],
            "upper": str(self.scratch / "upper"),
            "work": str(self.scratch / "work"),
            "merged": str(self.scratch / "merged"),
            "binds": host_binds(self.scratch),
        }
        self._proc = await asyncio.create_subprocess_exec(
            *nsinit_argv(config),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), _READY_TIMEOUT)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(b"ready "):
            self.stop()
            err = b""
            with contextlib.suppress(asyncio.TimeoutError):
                err = await asyncio.wait_for(self._proc.stderr.read(), 5)
            await self.wait_stopped()
            raise ContainerError(
                f"modal emulator (rootfs): sandbox container did not start: "
                f"{err.decode(errors='replace').strip() or line.decode(errors='replace')}"
            )
        self.init_pid = int(line.split()[1])

    def env(self, *overlays: Mapping[str, str]) -> dict[str, str]:
        return container_env(self.image, *overlays)

    def exec_argv(self, argv: list[str], workdir: str) -> list[str]:
        """Run `argv` inside the container, cwd `workdir` (a container path)."""
        if self.init_pid is None:
            raise ContainerError("container is not running")
        # --root without a value: the target's root (pid 1 is chrooted into the overlay);
        # --wdns: a working directory resolved inside that root (util-linux >= 2.38).
        return [
            "nsenter",
            f"--target={self.init_pid}",
            "--mount",
            "--pid",
            "--root",
            f"--wdns={workdir}",
            "--",
            *argv,
        ]

    def stop(self) -> None:
        """End the container: pid 1 exits, the kernel kills the rest and drops the mounts."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)

    async def wait_stopped(self) -> None:
        """Wait for pid 1 to be gone, then delete the sandbox's upper dir."""
        if self._proc is not None:
            await self._proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)
