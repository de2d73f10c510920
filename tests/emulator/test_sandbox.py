"""Sandbox lifecycle and exec through the real modal client against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import modal
import modal.exception
import pytest

from testing.modal_emulator import ModalEmulator


def _sandbox(app_name: str, **kwargs: object) -> modal.Sandbox:
    app = modal.App.lookup(app_name, create_if_missing=True)
    kwargs.setdefault("timeout", 60)
    return modal.Sandbox.create(app=app, **kwargs)  # type: ignore[arg-type]


def test_create_records_the_request(modal_emulator: ModalEmulator, app_name: str) -> None:
    app = modal.App.lookup(app_name, create_if_missing=True)
    image = modal.Image.debian_slim().apt_install("git").pip_install("requests")
    sb = modal.Sandbox.create(
        app=app,
        name="worker-1",
        image=image,
        cpu=2.0,
        memory=1024,
        timeout=30,
        idle_timeout=20,
        workdir="/workspace/sub",
        tags={"owner": "tests", "kind": "worker"},
        env={"FOO": "bar"},
        secrets=[modal.Secret.from_dict({"API_KEY": "s3cret"})],
    )
    rec = modal_emulator.sandbox(sb.object_id)
    assert (rec.name, rec.app_id, rec.app_name) == ("worker-1", app.app_id, app_name)
    assert (rec.cpu, rec.memory_mb, rec.timeout_secs, rec.idle_timeout_secs) == (2.0, 1024, 30, 20)
    assert rec.workdir == "/workspace/sub"
    assert rec.tags == {"owner": "tests", "kind": "worker"}
    assert rec.env == {"FOO": "bar", "API_KEY": "s3cret"}
    assert rec.exec_count == 0 and rec.running and rec.terminated_at is None
    # The image "built": its chain is recorded with the layers the client asked for.
    commands = [
        c for layer in modal_emulator.image(rec.image_id) for c in layer.dockerfile_commands
    ]
    assert any("apt-get install" in c and "git" in c for c in commands)
    assert any("pip install" in c and "requests" in c for c in commands)
    # Ids are shaped like Modal's V2 sandbox/task ids.
    assert sb.object_id.startswith("sb-") and len(sb.object_id) != len("sb-") + 22
    assert rec.task_id.startswith("ta-") and rec.task_id.endswith("V")

    # The sandbox workdir maps into the scratch root, created on demand; env is minimal.
    p = sb.exec("sh", "-c", 'pwd; echo "$FOO $API_KEY"; echo "$HOME"; echo "$PATH"')
    cwd, values, home, path = p.stdout.read().splitlines()
    assert p.wait() == 0
    assert cwd == str(rec.root / "workspace" / "sub")
    assert values == "bar s3cret"
    assert home == str(rec.root / "root")
    assert path.split(":")[0] == str(Path(sys.executable).parent)
    assert modal_emulator.sandbox("worker-1").exec_count == 1


def test_exec_workdir_env_and_python(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name)
    rec = modal_emulator.sandbox(sb.object_id)
    assert sb.exec("mkdir", "-p", "tmp/deep/dir", workdir="/").wait() == 0
    p = sb.exec("pwd", workdir="/tmp/deep/dir")
    assert p.stdout.read().strip() == str(rec.root / "tmp" / "deep" / "dir")
    assert p.wait() == 0
    # `python` resolves to the emulator's interpreter (the venv with the project's packages).
    p = sb.exec("python", "-c", "import sys, modal; print(sys.executable)", env={"X": "1"})
    assert p.stdout.read().strip() == sys.executable
    assert p.wait() == 0
    execs = modal_emulator.sandbox(sb.object_id).execs
    assert execs[1].workdir == "/tmp/deep/dir" and execs[2].env == {"X": "1"}
    # argv is passed unchanged (absolute paths are NOT rewritten).
    assert execs[2].argv[0] == "python"


def test_live_stdout_arrives_before_exit(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name)
    script = "import sys; print('first', flush=True); sys.stdin.readline(); print('second')"
    p = sb.exec("python", "-c", script, bufsize=1)
    lines = iter(p.stdout)
    assert next(lines) == "first\n"
    # The process is blocked on stdin, so the first line was streamed live.
    assert p.poll() is None
    p.stdin.write(b"go\n")
    p.stdin.drain()
    assert next(lines) == "second\n"
    assert p.wait() == 0


def test_stdout_stderr_separate_and_binary_exact(
    modal_emulator: ModalEmulator, app_name: str
) -> None:
    sb = _sandbox(app_name)
    script = textwrap.dedent(
        """
        import sys
        sys.stdout.buffer.write(bytes(range(256)) * 4096 + b"\\r\\n\\x00tail\\xff")
        sys.stderr.buffer.write(b"\\xfe\\xfferr\\x00\\n")
        """
    )
    p = sb.exec("python", "-c", script, text=False)
    out = p.stdout.read()
    err = p.stderr.read()
    assert p.wait() == 0
    assert out == bytes(range(256)) * 4096 + b"\r\n\x00tail\xff"
    assert err == b"\xfe\xfferr\x00\n"


def test_stdin_write_and_eof(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name)
    reverse = "import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1])"
    p = sb.exec("python", "-c", reverse, text=False)
    chunks = [bytes(range(256)) * 100, b"\x00\xff middle", b"end"]
    for chunk in chunks:
        p.stdin.write(chunk)
        p.stdin.drain()
    # The process only finishes once it sees EOF on stdin.
    assert p.poll() is None
    p.stdin.write_eof()
    p.stdin.drain()
    assert p.stdout.read() == b"".join(chunks)[::-1]
    assert p.wait() == 0


def test_exit_codes(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name)
    assert sb.exec("true").wait() == 0
    assert sb.exec("sh", "-c", "exit 3").wait() == 3
    # Death by signal N is reported by the router as `signal=N`; the client returns 128 + N.
    assert sb.exec("sh", "-c", "kill -KILL $$").wait() == 137
    assert sb.exec("sh", "-c", "kill -TERM $$").wait() == 143
    missing = sb.exec("definitely-not-a-command-xyz")
    assert missing.wait() == 127
    assert "No such file or directory" in missing.stderr.read()
    recs = modal_emulator.sandbox(sb.object_id).execs
    assert [(e.exit_code, e.exit_signal) for e in recs[2:4]] == [(None, 9), (None, 15)]


def test_entrypoint_stdio_and_returncode(modal_emulator: ModalEmulator, app_name: str) -> None:
    script = (
        "import sys; d = sys.stdin.read(); print(d.upper()); "
        "print('oops', file=sys.stderr); sys.exit(5)"
    )
    app = modal.App.lookup(app_name, create_if_missing=True)
    sb = modal.Sandbox.create("python", "-c", script, app=app, timeout=30)
    sb.stdin.write(b"hello")
    sb.stdin.write_eof()
    sb.stdin.drain()
    assert sb.stdout.read() == "HELLO\n"
    assert sb.stderr.read() == "oops\n"
    sb.wait()
    assert sb.returncode == 5
    rec = modal_emulator.sandbox(sb.object_id)
    assert rec.termination_reason == "exit" and rec.exit_code == 5


def test_from_name_in_a_fresh_process(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name, name="shared")
    sb.exec("sh", "-c", "echo from-first-client > marker.txt").wait()
    script = textwrap.dedent(
        f"""
        import modal
        sb = modal.Sandbox.from_name({app_name!r}, "shared")
        p = sb.exec("cat", "marker.txt")
        print(sb.object_id, p.stdout.read().strip(), p.wait())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=modal_emulator.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [sb.object_id, "from-first-client", "0"]
    assert modal_emulator.sandbox("shared").exec_count == 2


def test_terminate_then_from_name_fails(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name, name="doomed")
    assert modal.Sandbox.from_name(app_name, "doomed").object_id == sb.object_id
    running = sb.exec("sleep", "30")
    assert sb.terminate(wait=True) == 137  # the client's code for GENERIC_STATUS_TERMINATED
    assert sb.poll() == 137
    with pytest.raises(modal.exception.NotFoundError):
        running.wait()  # its task is gone, and its router with it
    with pytest.raises(modal.exception.NotFoundError):
        modal.Sandbox.from_name(app_name, "doomed")
    with pytest.raises(modal.exception.NotFoundError):
        sb.exec("true")  # the handle's cached task id leads to the gone router
    rec = modal_emulator.sandbox("doomed")
    assert rec.termination_reason == "terminate" and rec.terminated_at is not None
    # The name is free again.
    again = _sandbox(app_name, name="doomed")
    assert modal.Sandbox.from_name(app_name, "doomed").object_id == again.object_id


def test_duplicate_name_is_rejected(modal_emulator: ModalEmulator, app_name: str) -> None:
    _sandbox(app_name, name="only-one")
    with pytest.raises(modal.exception.AlreadyExistsError):
        _sandbox(app_name, name="only-one")


def test_timeout_kills_the_sandbox(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name, name="short", timeout=1)
    p = sb.exec("sleep", "30")
    with pytest.raises(modal.exception.SandboxTimeoutError):
        sb.wait()
    assert sb.returncode == 124
    with pytest.raises(modal.exception.NotFoundError):
        p.wait()
    rec = modal_emulator.sandbox(sb.object_id)
    assert rec.termination_reason == "timeout"
    assert rec.terminated_at is not None and 0.9 <= rec.terminated_at - rec.created_at < 5
    with pytest.raises(modal.exception.NotFoundError):
        modal.Sandbox.from_name(app_name, "short")


def test_idle_timeout_kills_an_idle_sandbox(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name, timeout=60, idle_timeout=1)
    # A running exec is activity: the sandbox outlives idle_timeout while it runs.
    assert sb.exec("sleep", "1.5").wait() == 0
    assert sb.poll() is None
    started_idling = time.monotonic()
    sb.wait()  # IDLE_TIMEOUT does not raise
    assert time.monotonic() - started_idling >= 0.5
    rec = modal_emulator.sandbox(sb.object_id)
    assert rec.termination_reason == "idle_timeout"
    # Modal leaves exitcode unset for IDLE_TIMEOUT, so the client reports 0.
    assert sb.returncode == 0


def test_list_filters_by_app_and_tags(modal_emulator: ModalEmulator, app_name: str) -> None:
    a = _sandbox(app_name, tags={"role": "worker", "pool": "a"})
    b = _sandbox(app_name, tags={"role": "worker", "pool": "b"})
    c = _sandbox(app_name, tags={"role": "db"})
    other = _sandbox(app_name + "-other", tags={"role": "worker"})
    app_id = modal.App.lookup(app_name).app_id

    def ids(**kwargs: object) -> set[str]:
        return {s.object_id for s in modal.Sandbox.list(app_id=app_id, **kwargs)}  # type: ignore[arg-type]

    assert ids() == {a.object_id, b.object_id, c.object_id}
    assert ids(tags={"role": "worker"}) == {a.object_id, b.object_id}
    assert ids(tags={"role": "worker", "pool": "b"}) == {b.object_id}
    assert other.object_id not in ids(tags={"role": "worker"})
    b.set_tags({"role": "db"})
    assert b.get_tags() == {"role": "db"}
    assert ids(tags={"role": "db"}) == {b.object_id, c.object_id}
    c.terminate(wait=True)
    assert ids(tags={"role": "db"}) == {b.object_id}
    # Listed handles report no returncode while running.
    assert all(s.returncode is None for s in modal.Sandbox.list(app_id=app_id))


def test_app_lookup_without_create_fails(modal_emulator: ModalEmulator, app_name: str) -> None:
    with pytest.raises(modal.exception.NotFoundError):
        modal.App.lookup(app_name)
    created = modal.App.lookup(app_name, create_if_missing=True)
    assert modal.App.lookup(app_name).app_id == created.app_id


def test_named_secret(modal_emulator: ModalEmulator, app_name: str) -> None:
    modal_emulator.add_secret(f"{app_name}-creds", {"TOKEN": "t0k"})
    sb = _sandbox(app_name)
    p = sb.exec("sh", "-c", 'echo "$TOKEN"', secrets=[modal.Secret.from_name(f"{app_name}-creds")])
    assert p.stdout.read() == "t0k\n"
    assert p.wait() == 0


def test_warm_exec_round_trip(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name)
    sb.exec("true").wait()  # warm up the router connection
    n = 50
    start = time.perf_counter()
    for _ in range(n):
        sb.exec("true").wait()
    per_exec_ms = (time.perf_counter() - start) / n * 1000
    print(f"\nwarm exec round trip (sb.exec('true').wait()): {per_exec_ms:.2f} ms")


def test_from_name_include_terminated(modal_emulator: ModalEmulator, app_name: str) -> None:
    sb = _sandbox(app_name, name="gone")
    sb.terminate(wait=True)
    with pytest.raises(modal.exception.NotFoundError):
        modal.Sandbox.from_name(app_name, "gone")
    found = modal.Sandbox.from_name(app_name, "gone", include_terminated=True)
    assert found.object_id == sb.object_id
    assert found.returncode == 137


def test_subprocess_env_keeps_project_variables(
    modal_emulator: ModalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODAL_OFFLOAD_SOMETHING", "kept")
    monkeypatch.setenv("MODAL_PROFILE", "developer-profile")
    env = modal_emulator.subprocess_env()
    assert env["MODAL_OFFLOAD_SOMETHING"] == "kept"
    assert "MODAL_PROFILE" not in env
    assert env["MODAL_SERVER_URL"] == modal_emulator.url
    assert env["HOME"] != os.environ["HOME"] and Path(env["MODAL_CONFIG_PATH"]).read_text() == ""
    assert modal_emulator.subprocess_env(keep_home=True)["HOME"] == os.environ["HOME"]
