"""Fault injection and diagnostics, through the real modal client."""

from __future__ import annotations

import asyncio
import time

import modal
import modal.exception
import pytest
from grpclib import Status
from grpclib.client import Channel
from modal_proto import task_command_router_pb2 as sr_pb2
from modal_proto.task_command_router_grpc import TaskCommandRouterStub

from testing.modal_emulator import ModalEmulator


def _sandbox(app_name: str, **kwargs: object) -> modal.Sandbox:
    app = modal.App.lookup(app_name, create_if_missing=True)
    kwargs.setdefault("timeout", 60)
    return modal.Sandbox.create(app=app, **kwargs)  # type: ignore[arg-type]


def test_kill_sandbox_mid_command(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name, name="victim")
    script = "import sys; print('started', flush=True); sys.stdin.read()"
    p = sb.exec("python", "-c", script, bufsize=1)
    assert next(iter(p.stdout)) == "started\n"  # the command is running for sure
    rec = modal_emulator.kill_sandbox("victim")
    assert rec.termination_reason == "killed" and rec.execs[0].exit_signal == 9
    # Not a tidy 137: the task's router is gone with it, so the client gets NOT_FOUND.
    with pytest.raises(modal.exception.NotFoundError):
        p.wait()
    with pytest.raises(modal.exception.SandboxTerminatedError):
        sb.wait()
    assert sb.returncode == 137
    with pytest.raises(modal.exception.NotFoundError):
        modal.Sandbox.from_name(app_name, "victim")


def test_injected_non_retryable_error_surfaces(
    modal_emulator: ModalEmulator, app_name: str
) -> None:
    modal_emulator.fail_next(
        "SandboxCreateV2", status=Status.FAILED_PRECONDITION, message="no capacity"
    )
    with pytest.raises(modal.exception.ConflictError, match="no capacity"):
        _sandbox(app_name)
    sb = _sandbox(app_name)  # only the next call was failed
    assert sb.exec("true").wait() == 0
    created = [c for c in modal_emulator.calls() if c.method == "SandboxCreateV2"]
    assert [c.injected_status for c in created] == [Status.FAILED_PRECONDITION.value, None]


def test_injected_transient_error_is_retried_by_client(
    modal_emulator: ModalEmulator, app_name: str
) -> None:
    sb = _sandbox(app_name)
    modal_emulator.fail_next("TaskExecStart", times=2, status=Status.UNAVAILABLE)
    assert sb.exec("true").wait() == 0
    assert modal_emulator.call_counts()["TaskExecStart"] == 3
    assert modal_emulator.faults.pending() == {}


def test_fail_next_rejects_unknown_rpc(modal_emulator: ModalEmulator) -> None:
    with pytest.raises(ValueError, match="unknown RPC"):
        modal_emulator.fail_next("SandboxCreateTypo")


def test_slow_stdio(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name)
    modal_emulator.set_stdio_delay(0.15, chunk_size=4)
    p = sb.exec("printf", "abcdefghijkl")  # 12 bytes -> 3 chunks of 4
    start = time.monotonic()
    assert p.stdout.read() == "abcdefghijkl"
    assert time.monotonic() - start >= 3 * 0.15
    assert p.wait() == 0


def test_unimplemented_rpc_error_names_the_rpc(
    modal_emulator: ModalEmulator, app_name: str
) -> None:
    sb = _sandbox(app_name)
    with pytest.raises(modal.exception.UnimplementedError, match="SandboxGetTunnelsV2"):
        sb.tunnels(timeout=1)
    assert modal_emulator.unimplemented_calls() == ["ModalClient/SandboxGetTunnelsV2"]


def test_exec_stdio_is_resumable_by_offset(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name)
    assert sb.exec("printf", "0123456789").wait() == 0
    rec = modal_emulator.sandbox(sb.object_id)

    async def read_from(offset: int) -> bytes:
        # Talk to the router directly, the way the client resumes after a dropped stream.
        host, port = modal_emulator.url.removeprefix("http://").split(":")
        channel = Channel(host, int(port))
        try:
            replies = await TaskCommandRouterStub(channel).TaskExecStdioRead(
                sr_pb2.TaskExecStdioReadRequest(
                    task_id=rec.task_id,
                    exec_id=rec.execs[0].exec_id,
                    offset=offset,
                    file_descriptor=sr_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDOUT,
                ),
                metadata={"authorization": "Bearer x"},
            )
        finally:
            channel.close()
        return b"".join(r.data for r in replies)

    assert asyncio.run(read_from(0)) == b"0123456789"
    assert asyncio.run(read_from(7)) == b"789"
    assert asyncio.run(read_from(10)) == b""
