"""The service's own semantics (issue 11, item 2), each through the real client against the
emulator. Every case has a matching line, with its source, in testing/modal_emulator/README.md
("Semantics a backend author must know")."""

from __future__ import annotations

import threading
import time

import modal
import modal.exception
import pytest

from testing.modal_emulator import ModalEmulator


def _sandbox(app_name: str, **kwargs: object) -> modal.Sandbox:
    app = modal.App.lookup(app_name, create_if_missing=True)
    kwargs.setdefault("timeout", 60)
    return modal.Sandbox.create(app=app, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 24 * 3600 + 1},
        {"idle_timeout": 24 * 3600 + 1},
        {"cpu": 65.0},
        {"cpu": (1.0, 65.0)},
        {"memory": 336 * 1024 + 1},
        {"tags": {"bad key": "x"}},
        {"tags": {"k": "v" * 64}},
        {"gpu": "Z100"},
        {"gpu": "H100:9"},
    ],
)
def test_out_of_range_create_is_rejected_as_on_modal(
    modal_emulator: ModalEmulator, app_name: str, options: dict[str, object]
) -> None:
    with pytest.raises(modal.exception.InvalidError):
        _sandbox(app_name, **options)
    assert modal_emulator.sandboxes() == []


def test_limits_themselves_are_accepted(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name, timeout=24 * 3600, idle_timeout=24 * 3600, cpu=64.0,
                  memory=336 * 1024, tags={"k" * 63: "v" * 63}, name="n" * 64)
    rec = modal_emulator.sandbox(sb.object_id)
    assert (rec.timeout_secs, rec.cpu, rec.memory_mb) == (86400, 64.0, 344064)


def test_name_and_tag_rules_hold_after_create(modal_emulator: ModalEmulator,
                                              app_name: str) -> None:
    with pytest.raises(modal.exception.InvalidError):
        _sandbox(app_name, name="has space")  # the client's own check
    sb = _sandbox(app_name)
    with pytest.raises(modal.exception.InvalidError):
        sb._experimental_set_name("n" * 65)  # the server's check
    sb._experimental_set_name("named")
    sb._experimental_set_name("named")  # idempotent
    with pytest.raises(modal.exception.InvalidError):
        sb.set_tags({"ok": "not/ok"})
    sb.set_tags({"ok": "1.5"})
    assert sb.get_tags() == {"ok": "1.5"}


def test_terminated_sandbox_keeps_its_name_until_finished(modal_emulator: ModalEmulator,
                                                          app_name: str) -> None:
    old = _sandbox(app_name, name="replace-me")
    old.terminate()  # not waited: the container is still shutting down
    with pytest.raises(modal.exception.AlreadyExistsError):
        _sandbox(app_name, name="replace-me")
    assert modal.Sandbox.from_name(app_name, "replace-me").object_id == old.object_id
    with pytest.raises(modal.exception.ConflictError):
        old.exec("true")  # no new commands in a terminating sandbox
    assert old.terminate(wait=True) == 137
    new = _sandbox(app_name, name="replace-me")
    assert modal.Sandbox.from_name(app_name, "replace-me").object_id == new.object_id


def test_sandbox_dying_under_an_exec_is_not_a_tidy_exit_code(
    modal_emulator: ModalEmulator, app_name: str
) -> None:
    sb = _sandbox(app_name)
    p = sb.exec("sh", "-c", "echo started; sleep 30", text=False)
    out = iter(p.stdout)
    assert next(out) == b"started\n"
    modal_emulator.kill_sandbox(sb.object_id)
    with pytest.raises(modal.exception.NotFoundError):
        next(out)  # the stream fails; it does not end cleanly
    with pytest.raises(modal.exception.NotFoundError):
        p.wait()
    assert sb.poll() == 137


def test_vanished_worker_hangs_a_wait_without_deadline(modal_emulator: ModalEmulator,
                                                       app_name: str) -> None:
    sb = _sandbox(app_name)
    forever = sb.exec("sleep", "300")
    bounded = sb.exec("sleep", "300", timeout=2)
    modal_emulator.vanish_worker(sb.object_id)
    assert sb.poll() == 137  # the control plane knows the sandbox is gone
    ended: list[BaseException] = []

    def wait() -> None:
        try:
            forever.wait()
        except modal.exception.Error as exc:
            ended.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    started = time.monotonic()
    # With a deadline the client gives up; its odd convention is returncode -1.
    assert bounded.wait() == -1
    assert time.monotonic() - started < 10
    # Without one it keeps retrying the unreachable router (every second).
    assert waiter.is_alive()
    assert modal_emulator.call_counts()["TaskExecWait"] >= 3
    modal_emulator.reset()  # the task is forgotten: NOT_FOUND ends the retries
    waiter.join(timeout=10)
    assert not waiter.is_alive() and isinstance(ended[0], modal.exception.NotFoundError)


def test_stdin_write_over_the_clients_limit(modal_emulator: ModalEmulator,
                                            app_name: str) -> None:
    limit = 16 * 1024 * 1024
    sb = _sandbox(app_name)
    p = sb.exec("wc", "-c")
    with pytest.raises(BufferError):
        p.stdin.write(b"x" * (limit + 1))  # refused by the client before anything is sent
    p.stdin.write(b"x" * limit)
    p.stdin.drain()
    p.stdin.write_eof()
    p.stdin.drain()
    assert p.stdout.read().strip() == str(limit)
    assert p.wait() == 0


def test_missing_exec_workdir_fails_the_exec(modal_emulator: ModalEmulator,
                                             app_name: str) -> None:
    sb = _sandbox(app_name, workdir="/workspace")
    assert sb.exec("true").wait() == 0  # the sandbox's own workdir exists
    with pytest.raises(modal.exception.NotFoundError, match="workdir"):
        sb.exec("true", workdir="/workspace/missing")
    assert sb.exec("mkdir", "missing").wait() == 0
    assert sb.exec("true", workdir="/workspace/missing").wait() == 0


def test_injected_round_trip_time(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name)
    assert sb.exec("true").wait() == 0  # warm: task id and router client cached
    modal_emulator.set_rtt(100)
    before = len(modal_emulator.calls())
    started = time.monotonic()
    assert sb.exec("true").wait() == 0
    elapsed = time.monotonic() - started
    calls = modal_emulator.calls()[before:]
    # Start, then wait: two round trips one after the other, each paying the injected 100 ms.
    assert modal_emulator.sequential_round_trips(calls) >= 2
    assert elapsed >= 0.2
    assert all(c.ended_at is not None and c.ended_at - c.at >= 0.1 for c in calls)


def test_a_gpu_sandbox_lives_on_the_v1_control_plane(modal_emulator: ModalEmulator,
                                                     app_name: str) -> None:
    # As the client sends it (modal/_resources.py:47, function_utils.py:655-669): the type
    # upper-cased, the count after the colon; GPU sandboxes go to V1 (_sandbox.py:76-79).
    sb = _sandbox(app_name, gpu="l4:2", name="gpu-box", tags={"k": "v"})
    rec = modal_emulator.sandbox(sb.object_id)
    gpu = rec.request.definition.resources.gpu_config
    assert (gpu.gpu_type, gpu.count) == ("L4", 2)
    assert modal_emulator.call_counts()["SandboxCreate"] == 1
    assert sb.exec("echo", "hi").stdout.read() == "hi\n"
    found = modal.Sandbox.from_name(app_name, "gpu-box")
    assert found.object_id == sb.object_id and found.get_tags() == {"k": "v"}
    assert found.poll() is None
    sb.terminate()
    assert sb.wait(raise_on_termination=False) is None and sb.poll() is not None
