"""The task command router: exec, stdio and stdin of processes inside a sandbox.

On Modal this service runs on the worker hosting the sandbox and the client dials it directly
with a JWT. The emulator serves it on the same port as the control plane; the JWT is accepted
without verification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

from grpclib import GRPCError, Status
from grpclib.server import Stream
from modal_proto import task_command_router_pb2 as sr_pb2
from modal_proto.task_command_router_grpc import TaskCommandRouterBase

from . import limits
from .faults import fill_unimplemented
from .process import ManagedProcess, OutputBuffer, PtyOptions
from .sandboxes import Sandbox, SandboxFinishedError, WorkdirMissingError

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from .server import ModalEmulator


T = TypeVar("T")


def _abort(status: Status, message: str) -> NoReturn:
    raise GRPCError(status, message)


def _exit_status(proc: ManagedProcess, response: type[Message]) -> Message:
    """TaskExecWait/PollResponse with `code` or `signal` set (the client reports 128+signal)."""
    if proc.exit_signal is not None:
        return response(signal=proc.exit_signal)
    return response(code=proc.exit_code or 0)


@fill_unimplemented("TaskCommandRouter")
class RouterServicer(TaskCommandRouterBase):
    def __init__(self, emulator: ModalEmulator) -> None:
        self.emu = emulator
        self.sandboxes = emulator.registry

    def _task(self, task_id: str) -> Sandbox:
        sb = self.sandboxes.by_task(task_id)
        if sb is None:
            _abort(Status.NOT_FOUND, f"Task {task_id} not found")
        if task_id in self.emu.vanished_tasks:
            # The worker is gone: nothing answers. The client retries UNAVAILABLE.
            _abort(Status.UNAVAILABLE, f"modal emulator: the worker of task {task_id} vanished")
        return sb

    def _live_task(self, task_id: str) -> Sandbox:
        """The task's router goes away with the task: once the sandbox has finished, every
        exec RPC says NOT_FOUND, and the client stops retrying on it
        (modal/sandbox/_task_command_router_client.py:889-890)."""
        sb = self._task(task_id)
        if sb.result is not None:
            _abort(Status.NOT_FOUND, f"Task {task_id} not found (the sandbox has finished)")
        return sb

    def _exec(self, task_id: str, exec_id: str) -> tuple[Sandbox, ManagedProcess]:
        sb = self._live_task(task_id)
        proc = sb.execs.get(exec_id)
        if proc is None:
            _abort(Status.NOT_FOUND, f"Exec {exec_id} not found in task {task_id}")
        return sb, proc

    async def _unless_gone(self, sb: Sandbox, waiter: Awaitable[T]) -> T:
        """Await `waiter` unless the sandbox finishes first; then answer as a gone task does."""
        task = asyncio.ensure_future(waiter)
        gone = asyncio.ensure_future(sb.done.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not task.done():
                task.cancel()
        self._live_task(sb.task_id)  # raises once the sandbox has finished
        return task.result()

    async def _send_buffer(
        self,
        stream: Stream[object, Message],
        buf: OutputBuffer,
        offset: int,
        make: Callable[[bytes, int], Message],
        sb: Sandbox | None = None,
    ) -> None:
        """Stream `buf` from `offset` until EOF, honouring the injected per-chunk delay. With
        `sb` (exec output), the stream fails as a gone task's does once the sandbox finishes."""
        faults = self.emu.faults
        while True:
            read = buf.read(offset, max(1, faults.stdio_chunk_size))
            chunk = await (read if sb is None else self._unless_gone(sb, read))
            if chunk is None:
                break
            if faults.stdio_delay > 0:
                await asyncio.sleep(faults.stdio_delay)  # fault injection: a slow link, not a sync
            await stream.send_message(make(chunk, offset))
            offset += len(chunk)
        if sb is not None:
            self._live_task(sb.task_id)  # EOF because the sandbox died is not a clean end

    # ------------------------------------------------------------------ exec lifecycle

    async def TaskExecStart(
        self, stream: Stream[sr_pb2.TaskExecStartRequest, sr_pb2.TaskExecStartResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        sb = self._live_task(req.task_id)
        pty = None
        if req.HasField("pty_info") and req.pty_info.enabled:
            info = req.pty_info
            pty = PtyOptions(rows=info.winsz_rows, cols=info.winsz_cols, term=info.env_term,
                             colorterm=info.env_colorterm)
        if req.container_id:
            _abort(
                Status.UNIMPLEMENTED,
                "modal emulator: TaskExecStart in a sidecar container is not supported",
            )
        try:
            env, _ = self.emu.objects.resolve_secret_sources(
                list(req.secret_sources), list(req.secret_ids)
            )
        except KeyError as exc:
            _abort(Status.NOT_FOUND, f"Secret {exc.args[0]} not found")
        env.update({e.key: e.value for e in req.env})
        workdir = req.workdir if req.HasField("workdir") else None
        if workdir is not None and not workdir.startswith("/"):
            _abort(Status.INVALID_ARGUMENT, f"workdir must be absolute, got {workdir!r}")
        try:
            await sb.start_exec(
                req.exec_id,
                list(req.command_args),
                workdir=workdir,
                env=env,
                capture_stdout=req.stdout_config == sr_pb2.TASK_EXEC_STDOUT_CONFIG_PIPE,
                capture_stderr=req.stderr_config == sr_pb2.TASK_EXEC_STDERR_CONFIG_PIPE,
                timeout_secs=req.timeout_secs if req.HasField("timeout_secs") else None,
                pty=pty,
            )
        except SandboxFinishedError:
            _abort(Status.FAILED_PRECONDITION, f"Sandbox {sb.sandbox_id} is terminating")
        except WorkdirMissingError:
            # Best reading (README, "Exec workdir"): the process cannot start at all.
            _abort(Status.NOT_FOUND, f"workdir {workdir} does not exist in the sandbox")
        await stream.send_message(sr_pb2.TaskExecStartResponse())

    async def TaskExecWait(
        self, stream: Stream[sr_pb2.TaskExecWaitRequest, sr_pb2.TaskExecWaitResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        sb, proc = self._exec(req.task_id, req.exec_id)
        await self._unless_gone(sb, proc.wait())
        await stream.send_message(_exit_status(proc, sr_pb2.TaskExecWaitResponse))

    async def TaskExecPoll(
        self, stream: Stream[sr_pb2.TaskExecPollRequest, sr_pb2.TaskExecPollResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        _, proc = self._exec(req.task_id, req.exec_id)
        if proc.exited.is_set():
            await stream.send_message(_exit_status(proc, sr_pb2.TaskExecPollResponse))
        else:
            await stream.send_message(sr_pb2.TaskExecPollResponse())

    # ------------------------------------------------------------------ exec stdio

    async def TaskExecStdioRead(
        self, stream: Stream[sr_pb2.TaskExecStdioReadRequest, sr_pb2.TaskExecStdioReadResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        sb, proc = self._exec(req.task_id, req.exec_id)
        stderr = req.file_descriptor == sr_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDERR
        buf = proc.stderr if stderr else proc.stdout
        await self._send_buffer(
            stream,  # type: ignore[arg-type]
            buf,
            req.offset,
            lambda data, _offset: sr_pb2.TaskExecStdioReadResponse(data=data),
            sb,
        )

    async def TaskExecStdinWrite(
        self, stream: Stream[sr_pb2.TaskExecStdinWriteRequest, sr_pb2.TaskExecStdinWriteResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        sb, proc = self._exec(req.task_id, req.exec_id)
        await self._write_stdin(sb, proc, req.offset, req.data, req.eof)
        await stream.send_message(sr_pb2.TaskExecStdinWriteResponse())

    async def TaskExecStdinWriteStream(
        self,
        stream: Stream[
            sr_pb2.TaskExecStdinWriteStreamRequest, sr_pb2.TaskExecStdinWriteStreamResponse
        ],
    ) -> None:
        first = await stream.recv_message()
        if first is None or first.WhichOneof("payload") != "start":
            _abort(
                Status.INVALID_ARGUMENT, "TaskExecStdinWriteStream must begin with a start message"
            )
        sb, proc = self._exec(first.start.task_id, first.start.exec_id)
        offset = first.start.offset
        async for msg in stream:
            kind = msg.WhichOneof("payload")
            if kind == "data":
                await self._write_stdin(sb, proc, offset, msg.data, False)
                offset += len(msg.data)
            elif kind == "end":
                await self._write_stdin(sb, proc, offset, b"", True)
                await stream.send_message(sr_pb2.TaskExecStdinWriteStreamResponse())
                return
        # Stream closed without `end`: stdin stays open so the client can resume.
        await stream.send_message(sr_pb2.TaskExecStdinWriteStreamResponse())

    async def TaskExecStdinStatus(
        self, stream: Stream[sr_pb2.TaskExecStdinStatusRequest, sr_pb2.TaskExecStdinStatusResponse]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        _, proc = self._exec(req.task_id, req.exec_id)
        await stream.send_message(
            sr_pb2.TaskExecStdinStatusResponse(
                num_bytes_written=proc.stdin_offset, closed=proc.stdin_closed
            )
        )

    async def _write_stdin(
        self, sb: Sandbox, proc: ManagedProcess, offset: int, data: bytes, eof: bool
    ) -> None:
        if len(data) > limits.MAX_STDIN_WRITE_BYTES:
            # The client never sends more in one write (it raises BufferError first).
            _abort(
                Status.RESOURCE_EXHAUSTED,
                f"stdin write of {len(data)} bytes exceeds {limits.MAX_STDIN_WRITE_BYTES}",
            )
        sb.touch()  # stdin writes count as activity for idle_timeout
        try:
            await proc.write_stdin(offset, data, eof)
        except ValueError as exc:
            _abort(Status.INVALID_ARGUMENT, str(exc))

    # ------------------------------------------------------------------ sandbox entrypoint stdio

    async def SandboxStdioReadV2(
        self, stream: Stream[sr_pb2.SandboxStdioReadV2Request, sr_pb2.SandboxStdioReadV2Response]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        sb = self._task(req.task_id)
        stderr = req.file_descriptor == sr_pb2.SANDBOX_STDIO_FILE_DESCRIPTOR_STDERR
        buf = sb.stderr if stderr else sb.stdout
        await self._send_buffer(
            stream,  # type: ignore[arg-type]
            buf,
            req.offset,
            lambda data, offset: sr_pb2.SandboxStdioReadV2Response(
                data=data, starting_offset=offset
            ),
        )

    async def SandboxStdinWriteV2(
        self, stream: Stream[sr_pb2.SandboxStdinWriteV2Request, sr_pb2.SandboxStdinWriteV2Response]
    ) -> None:
        req = await stream.recv_message()
        assert req is not None
        sb = self._task(req.task_id)
        if sb.entrypoint is None:
            # No entrypoint: nothing reads stdin; accept and drop, but still count as activity.
            sb.touch()
        else:
            await self._write_stdin(sb, sb.entrypoint, req.offset, req.data, req.eof)
        await stream.send_message(sr_pb2.SandboxStdinWriteV2Response())
