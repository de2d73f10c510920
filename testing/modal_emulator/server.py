"""`ModalEmulator`: the server object, its lifecycle and the API tests use to inspect and poke it.

The emulator runs on one asyncio event loop (usually a background thread, see `thread.py`).
Its state belongs to that loop; the public methods below are safe to call from any other thread
because they hop onto the loop and wait for the answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

import grpclib.server
from grpclib import Status
from grpclib.protocol import H2Protocol
from modal_proto import api_pb2
from modal_proto.api_grpc import ModalClientBase
from modal_proto.task_command_router_grpc import TaskCommandRouterBase

from .billing import ProviderPrices
from .blobs import BlobServer
from .client_env import is_client_var
from .control_plane import ControlPlaneServicer
from .faults import FaultInjector, InstrumentedService, service_methods
from .netutil import bind_tcp
from .objects import ImageRecord, ObjectStore, image_builder_version
from .records import CallRecord, SandboxRecord
from .rootfs import IMAGE_BUILDER_VERSION as ROOTFS_BUILDER_VERSION
from .rootfs import RootfsRuntime
from .router import RouterServicer
from .sandboxes import SandboxRegistry, map_sandbox_path

T = TypeVar("T")
GenericResult = api_pb2.GenericResult

PINNED_MODAL_VERSION = "1.6.4"
TOKEN_ID = "ak-modalemulator"
TOKEN_SECRET = "as-modalemulator"
# How long stop()/reset() wait for killed processes to release their pipes.
_DRAIN_TIMEOUT = 5.0
ImageMode = Literal["host", "rootfs"]


class _GrpcServer(grpclib.server.Server):
    """grpclib's Server, plus closing client connections on shutdown.

    `Server.close()` only cancels request handlers; a connection a live client keeps open (the
    modal client caches its channel) would leak its transport. Relies on grpclib's private
    `_protocol_factory` (grpclib 0.4.x).
    """

    def __init__(self, handlers: list[InstrumentedService]) -> None:
        super().__init__(handlers)
        self._protocols: weakref.WeakSet[H2Protocol] = weakref.WeakSet()

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        self._protocols.add(protocol)
        return protocol

    def close_connections(self) -> None:
        for protocol in list(self._protocols):
            processor = getattr(protocol, "processor", None)  # set once the connection is made
            if processor is not None:
                processor.close("modal emulator stopped")


class ModalEmulator:
    """An in-process stand-in for Modal's API, good enough for the real client's Sandbox paths."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        images: ImageMode = "host",
        rtt_ms: float = 0.0,
        terminate_seconds: float = 0.5,
    ) -> None:
        """`images="host"`: images are records only and sandboxes run host processes;
        `images="rootfs"`: images are built for real and sandboxes run isolated inside them
        (Linux and root only, see rootfs/)."""
        if images not in ("host", "rootfs"):
            raise ValueError(f"images must be 'host' or 'rootfs', got {images!r}")
        self.base_dir = Path(base_dir)
        self.host = host
        self.port = port
        self.images = images
        self.objects = ObjectStore()
        self.rootfs = RootfsRuntime(self.objects) if images == "rootfs" else None
        self.registry = SandboxRegistry()
        self.faults = FaultInjector(
            service_methods(ModalClientBase) | service_methods(TaskCommandRouterBase)
        )
        self.faults.rtt = rtt_ms / 1000
        self._rtt_default = self.faults.rtt
        # How long a terminated sandbox takes to finish; it keeps its name until then (README).
        self.terminate_seconds = terminate_seconds
        # Task ids whose worker vanished: the router no longer answers for them.
        self.vanished_tasks: set[str] = set()
        self._calls: list[CallRecord] = []
        self._calls_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _GrpcServer | None = None
        self._blob_server = BlobServer(self.objects.blobs)
        # Client-side files for subprocesses: an empty config file and a HOME that isn't the user's.
        self.client_dir = self.base_dir / "_client"
        # The provider's price list for the billing report (None: billing.ProviderPrices()).
        self.prices: ProviderPrices | None = None

    # ===================================================================== lifecycle (on the loop)

    @property
    def image_builder_version(self) -> str:
        """What ClientHello / EnvironmentGetOrCreate tell the client; it picks the Dockerfile
        lines from it (debian_slim's Debian release: modal/_image.py ~2806). Lazy: the host
        mode's value imports `modal`."""
        return ROOTFS_BUILDER_VERSION if self.rootfs is not None else image_builder_version()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.client_dir / "home").mkdir(parents=True, exist_ok=True)
        (self.client_dir / "modal.toml").touch()
        # mypy can't see that @fill_unimplemented made the generated bases concrete.
        control_plane = ControlPlaneServicer(self)  # type: ignore[abstract]
        router = RouterServicer(self)  # type: ignore[abstract]
        services = [
            InstrumentedService(control_plane, self.faults, self._record_call),
            # The router shares the port: the client dials whatever URL we hand out.
            InstrumentedService(router, self.faults, self._record_call),
        ]
        self._server = _GrpcServer(services)
        # Bind the socket ourselves so that port 0 yields a known free port.
        sock = bind_tcp(self.host, self.port)
        self.port = sock.getsockname()[1]
        await self._server.start(sock=sock)
        await self._blob_server.start(self.host)

    async def stop(self) -> None:
        await self._terminate_all("reset")
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), _DRAIN_TIMEOUT)
            self._server.close_connections()
            self._server = None
        await self._blob_server.stop()

    async def _terminate_all(self, reason: str) -> None:
        sandboxes = self.registry.all()
        for sb in sandboxes:
            await sb.finish(
                GenericResult.GENERIC_STATUS_TERMINATED, reason, exception="Emulator reset"
            )
        # A process that escaped its process group may hold a pipe open; don't hang on it.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(sb.drain() for sb in sandboxes)), _DRAIN_TIMEOUT
            )

    # ===================================================================== helpers for servicers

    def _record_call(self, call: CallRecord) -> Callable[[], None]:
        """Log `call`; the returned function stamps its end time."""
        with self._calls_lock:
            calls = self._calls
            index = len(calls)
            calls.append(call)

        def ended() -> None:
            with self._calls_lock:
                # A reset in between replaced the list: the old entry is gone, nothing to stamp.
                if calls is self._calls and index < len(calls) and calls[index] is call:
                    calls[index] = dataclasses.replace(call, ended_at=time.time())

        return ended

    def blob_url(self, blob_id: str) -> str:
        return f"http://{self.host}:{self._blob_server.port}/blobs/{blob_id}"

    def sandbox_root(self, sandbox_id: str) -> Path:
        return self.base_dir / sandbox_id

    def materialize_mounts(self, root: Path, mount_ids: list[str]) -> None:
        """Copy mounted files into the sandbox filesystem at their remote paths."""
        for mount_id in mount_ids:
            for f in self.objects.mounts[mount_id].files:
                path = map_sandbox_path(root, f.filename)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(self.objects.file_contents[f.sha256_hex])
                if f.HasField("mode"):
                    path.chmod(f.mode & 0o7777)

    # ===================================================================== thread hopping

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run a synchronous `fn` on the emulator loop (directly if we are on it)."""
        loop = self._require_loop()
        if self._on_loop_thread():
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # hand any failure to the calling thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def _run_async(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the emulator loop from another thread and wait for it."""
        loop = self._require_loop()
        if self._on_loop_thread():
            raise RuntimeError(
                "called from the emulator's own loop; use the *_async variant instead"
            )

        async def wrapper() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(timeout=60)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("emulator is not running")
        return self._loop

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    # ===================================================================== public test API

    def env(self) -> dict[str, str]:
        """Environment for a process that should use this emulator with the real client.

        MODAL_CONFIG_PATH points at an empty file so no ~/.modal.toml is read, and HOME at a
        scratch directory so nothing the client or CLI writes lands in the real home.
        """
        return {
            "MODAL_SERVER_URL": self.url,
            "MODAL_TOKEN_ID": TOKEN_ID,
            "MODAL_TOKEN_SECRET": TOKEN_SECRET,
            "MODAL_CONFIG_PATH": str(self.client_dir / "modal.toml"),
            "HOME": str(self.client_dir / "home"),
        }

    def subprocess_env(
        self, base: Mapping[str, str] | None = None, *, keep_home: bool = False
    ) -> dict[str, str]:
        """`base` (default os.environ) minus the modal client's settings, plus `env()`.

        Only variables the client reads are dropped (see client_env.py), so the project's own
        MODAL_OFFLOAD_* settings pass through. `keep_home=True` keeps `base`'s HOME (for tests
        whose fixtures own HOME) instead of the emulator's scratch home.
        """
        source = os.environ if base is None else base
        env = {k: v for k, v in source.items() if not is_client_var(k)}
        env.update(self.env())
        if keep_home and "HOME" in source:
            env["HOME"] = source["HOME"]
        return env

    def sandboxes(self) -> list[SandboxRecord]:
        """Snapshots of every sandbox created since the last reset, oldest first."""
        return self._on_loop(
            lambda: sorted(
                (sb.record.snapshot() for sb in self.registry.all()), key=lambda r: r.created_at
            )
        )

    def sandbox(self, id_or_name: str) -> SandboxRecord:
        """Snapshot of one sandbox, by sandbox id, task id or name (a running one wins)."""
        return self._on_loop(lambda: self.registry.find(id_or_name).record.snapshot())

    def kill_sandbox(
        self, id_or_name: str, *, status: int = GenericResult.GENERIC_STATUS_TERMINATED
    ) -> SandboxRecord:
        """Kill a sandbox as if its container died: SIGKILL every process group, mark it finished.

        The task is gone, so the router answers NOT_FOUND for its execs: an in-flight
        `ContainerProcess.wait()` raises `NotFoundError`, as the client expects
        (modal/sandbox/_task_command_router_client.py:889); `Sandbox.wait()` sees `status`
        (TERMINATED by default: returncode 137, SandboxTerminatedError).
        """
        return self._run_async(lambda: self.kill_sandbox_async(id_or_name, status=status))

    async def kill_sandbox_async(
        self, id_or_name: str, *, status: int = GenericResult.GENERIC_STATUS_TERMINATED
    ) -> SandboxRecord:
        sb = self.registry.find(id_or_name)
        await sb.finish(status, "killed", exception="Sandbox killed by fault injection")
        await sb.drain()
        return sb.record.snapshot()

    def vanish_worker(self, id_or_name: str) -> SandboxRecord:
        """The sandbox's task AND its worker are gone: the control plane reports the sandbox
        terminated, but the router stops answering (UNAVAILABLE, which the client retries):
        a `ContainerProcess.wait()` without an exec deadline retries forever, as the client
        warns (modal/sandbox/_task_command_router_client.py:891-893)."""
        return self._run_async(lambda: self.vanish_worker_async(id_or_name))

    async def vanish_worker_async(self, id_or_name: str) -> SandboxRecord:
        sb = self.registry.find(id_or_name)
        self.vanished_tasks.add(sb.task_id)
        await sb.finish(
            GenericResult.GENERIC_STATUS_TERMINATED, "killed", exception="Worker lost"
        )
        await sb.drain()
        return sb.record.snapshot()

    def set_image_build_delay(self, seconds: float) -> None:
        """Make every image build take `seconds` (a long first build on Modal)."""
        self.faults.image_build_delay = seconds

    def set_rtt(self, ms: float) -> None:
        """Inject `ms` of round-trip time into every RPC and stream message (see README)."""
        self.faults.rtt = ms / 1000

    def sequential_round_trips(self, calls: list[CallRecord] | None = None) -> int:
        """The most calls of `calls` (default: the whole log) that ran one after another, each
        starting after the previous one ended: the round trips a client paid in sequence."""
        chain = 0
        last_end = float("-inf")
        finished = [c for c in (self.calls() if calls is None else calls) if c.ended_at]
        for call in sorted(finished, key=lambda c: c.ended_at or 0.0):
            if call.at >= last_end:
                chain += 1
                last_end = call.ended_at or 0.0
        return chain

    def fail_next(
        self,
        rpc: str,
        times: int = 1,
        status: Status = Status.UNAVAILABLE,
        message: str | None = None,
    ) -> None:
        """Fail the next `times` calls of `rpc` with `status` (see `FaultInjector.fail_next`)."""
        self.faults.fail_next(rpc, times=times, status=status, message=message)

    def set_stdio_delay(self, seconds: float, *, chunk_size: int | None = None) -> None:
        """Delay every stdio message by `seconds`; optionally cap bytes per message."""
        self.faults.stdio_delay = seconds
        if chunk_size is not None:
            self.faults.stdio_chunk_size = chunk_size

    def add_secret(self, name: str, env: Mapping[str, str]) -> str:
        """Register a named secret so `modal.Secret.from_name(name)` resolves; returns its id."""
        return self._on_loop(lambda: self.objects.create_secret(name, dict(env)).secret_id)

    def calls(self) -> list[CallRecord]:
        with self._calls_lock:
            return list(self._calls)

    def call_counts(self) -> Counter[str]:
        """How often each RPC was called, keyed by method name (e.g. "TaskExecStart")."""
        return Counter(c.method for c in self.calls())

    def unimplemented_calls(self) -> list[str]:
        """ "Service/Method" of every call that hit an unimplemented RPC, in order."""
        return [f"{c.service}/{c.method}" for c in self.calls() if not c.implemented]

    def image(self, image_id: str) -> list[ImageRecord]:
        """The image and its base images (base first); empty if the id is unknown."""
        return self._on_loop(lambda: self.objects.image_chain(image_id))

    def apps(self) -> dict[str, str]:
        """App name -> app id."""
        return self._on_loop(lambda: {a.name: a.app_id for a in self.objects.apps.values()})

    def reset(self, base_dir: str | os.PathLike[str] | None = None) -> None:
        """Kill and forget all sandboxes, clear faults and the call log; optionally move base_dir.

        Apps, images, mounts, secrets and blobs survive: clients cache hydrated objects
        (e.g. the default image) across tests, and those ids must stay valid.
        """
        self._run_async(lambda: self.reset_async(base_dir))

    async def reset_async(self, base_dir: str | os.PathLike[str] | None = None) -> None:
        await self._terminate_all("reset")
        self.registry.clear()
        self.vanished_tasks.clear()
        self.faults.clear()
        self.faults.rtt = self._rtt_default
        with self._calls_lock:
            self._calls.clear()
        if base_dir is not None:
            self.base_dir = Path(base_dir)
            self.base_dir.mkdir(parents=True, exist_ok=True)
