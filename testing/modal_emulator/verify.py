"""Re-verify the emulator against the installed `modal` client.

    python -m testing.modal_emulator.verify [-v]

Drives every client path the project relies on (see CHECKS) through the REAL client against a
fresh emulator, then reports:

* each check, passed or failed (with the error);
* every RPC the client called that the emulator does not implement (the usual symptom of a new
  client release: it moved to a new RPC);
* implemented RPCs the client no longer called (the other half of that symptom).

Then the same for image mode ``rootfs`` (ROOTFS_CHECKS against a second emulator: an image
layer builds and streams its log, a host-only binary is not found in a sandbox, numpy is missing
until the image pip-installs it, a failing step fails the build), where this machine can run it
(Linux, root, mmdebstrap); elsewhere it says rootfs mode was not verified and why, and with
``--require-rootfs`` (or CI_REQUIRE_ROOTFS=1) that is a failure.

Exit status is 0 only if every check passed and no unimplemented RPC was called. Run it after
bumping `modal` and before trusting the emulator-based tests. To cover a new client path, add a
function to CHECKS (or ROOTFS_CHECKS).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client_env import forget_server_state, is_client_var
from .rootfs import unavailable_reason as rootfs_unavailable_reason
from .server import PINNED_MODAL_VERSION, ImageMode, ModalEmulator
from .thread import EmulatorThread

Check = Callable[[ModalEmulator, str], None]

# Implemented for robustness but off the paths CHECKS drive (retries, fallbacks, rarely used
# client APIs); not calling them is no sign of a protocol change.
_OPTIONAL_RPCS = {
    "BlobGet",
    "ClientHello",
    "ImageFromId",
    "ImageJoinStreaming",
    "SandboxSetName",
    "TaskExecPoll",
    "TaskExecStdinStatus",
    "TaskExecStdinWriteStream",
}


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _app(app_name: str) -> Any:
    import modal

    return modal.App.lookup(app_name, create_if_missing=True)


def check_app_lookup(emu: ModalEmulator, app_name: str) -> None:
    import modal
    import modal.exception

    try:
        modal.App.lookup(app_name + "-missing")
    except modal.exception.NotFoundError:
        pass
    else:
        raise AssertionError("App.lookup of a missing app without create_if_missing succeeded")
    created = _app(app_name)
    _expect(modal.App.lookup(app_name).app_id == created.app_id, "App.lookup returned another app")


def check_create_with_options(emu: ModalEmulator, app_name: str) -> None:
    import modal

    image = modal.Image.debian_slim().apt_install("git").pip_install("requests")
    sb = modal.Sandbox.create(
        app=_app(app_name),
        name="verify-options",
        image=image,
        cpu=1.5,
        memory=768,
        timeout=120,
        idle_timeout=60,
        workdir="/workspace",
        tags={"suite": "verify"},
        env={"A": "1"},
        secrets=[modal.Secret.from_dict({"B": "2"})],
    )
    rec = emu.sandbox(sb.object_id)
    got = (rec.cpu, rec.memory_mb, rec.timeout_secs, rec.idle_timeout_secs, rec.workdir)
    _expect(got == (1.5, 768, 120, 60, "/workspace"), f"recorded options {got}")
    _expect(rec.tags == {"suite": "verify"}, f"tags {rec.tags}")
    _expect(rec.env == {"A": "1", "B": "2"}, f"env {rec.env}")
    sb.terminate()


def check_local_sources(emu: ModalEmulator, app_name: str) -> None:
    import modal

    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp, "src", "verify_emu_pkg")
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("VALUE = 42\n")
        data = Path(tmp, "data")
        data.mkdir()
        (data / "big.bin").write_bytes(b"\x01" * (5 * 1024 * 1024))  # forces a blob upload
        sys.path.insert(0, str(pkg.parent))
        try:
            image = (
                modal.Image.debian_slim()
                .add_local_python_source("verify_emu_pkg")
                .add_local_dir(data, "/data")
            )
            sb = modal.Sandbox.create(app=_app(app_name), image=image, timeout=60)
        finally:
            sys.path.remove(str(pkg.parent))
    p = sb.exec("python", "-c", "import verify_emu_pkg as m; print(m.VALUE)", workdir="/root")
    _expect(p.stdout.read() == "42\n" and p.wait() == 0, "mounted package not importable")
    p = sb.exec("python", "-c", "import os; print(os.path.getsize('big.bin'))", workdir="/data")
    _expect(p.stdout.read().strip() == str(5 * 1024 * 1024), "blob-uploaded file wrong size")
    sb.terminate()


def check_exec_stdio(emu: ModalEmulator, app_name: str) -> None:
    import modal

    sb = modal.Sandbox.create(app=_app(app_name), timeout=60)
    script = "import sys; print('a', flush=True); sys.stdin.readline(); print('b')"
    p = sb.exec("python", "-c", script, bufsize=1)
    lines = iter(p.stdout)
    _expect(next(lines) == "a\n" and p.poll() is None, "first line not streamed live")
    p.stdin.write(b"go\n")
    p.stdin.drain()
    _expect(next(lines) == "b\n" and p.wait() == 0, "second line / exit")

    binary = "import sys; sys.stdout.buffer.write(bytes(range(256))); sys.stderr.write('e')"
    raw = sb.exec("python", "-c", binary, text=False)
    _expect(raw.stdout.read() == bytes(range(256)), "binary stdout not byte-exact")
    _expect(raw.stderr.read() == b"e", "stderr not separate")

    cat = sb.exec("cat", text=False)
    cat.stdin.write(b"\x00in\xff")
    cat.stdin.write_eof()
    cat.stdin.drain()
    _expect(cat.stdout.read() == b"\x00in\xff" and cat.wait() == 0, "stdin round trip")

    codes = [sb.exec("sh", "-c", cmd).wait() for cmd in ("exit 0", "exit 3", "kill -KILL $$")]
    _expect(codes == [0, 3, 137], f"exit codes {codes}")
    sb.terminate()


def check_entrypoint(emu: ModalEmulator, app_name: str) -> None:
    import modal

    script = "import sys; print(sys.stdin.read().upper()); sys.exit(4)"
    sb = modal.Sandbox.create("python", "-c", script, app=_app(app_name), timeout=60)
    sb.stdin.write(b"x")
    sb.stdin.write_eof()
    sb.stdin.drain()
    _expect(sb.stdout.read() == "X\n", "entrypoint stdout")
    sb.wait()
    _expect(sb.returncode == 4, f"entrypoint returncode {sb.returncode}")


def check_lookup_list_tags(emu: ModalEmulator, app_name: str) -> None:
    import modal

    app = _app(app_name)
    sb = modal.Sandbox.create(app=app, name="verify-lookup", timeout=60, tags={"k": "v"})
    _expect(
        modal.Sandbox.from_name(app_name, "verify-lookup").object_id == sb.object_id, "from_name"
    )
    _expect(modal.Sandbox.from_id(sb.object_id).exec("true").wait() == 0, "from_id + exec")
    listed = [s.object_id for s in modal.Sandbox.list(app_id=app.app_id, tags={"k": "v"})]
    _expect(listed == [sb.object_id], f"list by tags {listed}")
    sb.set_tags({"k": "w"})
    _expect(sb.get_tags() == {"k": "w"}, "set_tags/get_tags")


def check_from_name_in_subprocess(emu: ModalEmulator, app_name: str) -> None:
    script = textwrap.dedent(
        f"""
        import modal
        sb = modal.Sandbox.from_name({app_name!r}, "verify-lookup")
        print(sb.exec("echo", "hi").stdout.read().strip())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=emu.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _expect(out.returncode == 0 and out.stdout.strip() == "hi", f"subprocess: {out.stderr[-500:]}")


def check_terminate_poll_wait(emu: ModalEmulator, app_name: str) -> None:
    import modal
    import modal.exception

    sb = modal.Sandbox.create(app=_app(app_name), name="verify-term", timeout=60)
    _expect(sb.poll() is None, "poll while running")
    sb.terminate()
    sb.wait(raise_on_termination=False)
    _expect(sb.returncode == 137, f"returncode after terminate {sb.returncode}")
    try:
        modal.Sandbox.from_name(app_name, "verify-term")
    except modal.exception.NotFoundError:
        pass
    else:
        raise AssertionError("terminated sandbox still found by name")


def check_timeouts(emu: ModalEmulator, app_name: str) -> None:
    import modal
    import modal.exception

    app = _app(app_name)
    timed = modal.Sandbox.create(app=app, timeout=1)
    idle = modal.Sandbox.create(app=app, timeout=60, idle_timeout=1)
    try:
        timed.wait()
    except modal.exception.SandboxTimeoutError:
        pass
    else:
        raise AssertionError("timeout did not raise SandboxTimeoutError")
    _expect(timed.returncode == 124, f"timeout returncode {timed.returncode}")
    idle.wait()
    reason = emu.sandbox(idle.object_id).termination_reason
    _expect(reason == "idle_timeout", f"idle sandbox ended by {reason}")


def check_named_secret(emu: ModalEmulator, app_name: str) -> None:
    import modal

    emu.add_secret(f"{app_name}-secret", {"S": "v"})
    sb = modal.Sandbox.create(
        app=_app(app_name), timeout=60, secrets=[modal.Secret.from_name(f"{app_name}-secret")]
    )
    _expect(sb.exec("sh", "-c", "echo $S").stdout.read() == "v\n", "named secret env")
    sb.terminate()


CHECKS: list[Check] = [
    check_app_lookup,
    check_create_with_options,
    check_local_sources,
    check_exec_stdio,
    check_entrypoint,
    check_lookup_list_tags,
    check_from_name_in_subprocess,
    check_terminate_poll_wait,
    check_timeouts,
    check_named_secret,
]


def check_rootfs_layers(emu: ModalEmulator, app_name: str) -> None:
    import modal

    marker = uuid.uuid4().hex
    image = modal.Image.debian_slim().run_commands(f"echo {marker} > /verify-marker")
    sb = modal.Sandbox.create(app=_app(app_name), image=image, timeout=60)
    out = sb.exec("cat", "/verify-marker").stdout.read()
    _expect(out == f"{marker}\n", f"the RUN layer's file reads {out!r}")
    _expect(emu.call_counts()["ImageJoinStreaming"] >= 1, "the build log was not streamed")
    assert emu.rootfs is not None
    logs = "".join(
        entry.data for build in emu.rootfs.builds.builds.values() for entry in build.entries
    )
    _expect(f"RUN echo {marker}" in logs, "the build log lacks the RUN step")
    sb.terminate()


def check_rootfs_isolation(emu: ModalEmulator, app_name: str) -> None:
    import modal

    with tempfile.TemporaryDirectory() as tmp:
        tool = Path(tmp) / "host-only-tool"
        tool.write_text("#!/bin/sh\necho host\n")
        tool.chmod(0o755)
        sb = modal.Sandbox.create(app=_app(app_name), timeout=60)
        proc = sb.exec(str(tool))
        _expect(proc.wait() == 127, "a host-only binary ran inside the sandbox")
        proc = sb.exec("sh", "-c", "command -v rsync git zsh; test -e " + sys.executable)
        _expect(proc.wait() == 1, f"host tools or the host venv are visible: {proc.stdout.read()}")
        sb.terminate()


def check_rootfs_pip_install(emu: ModalEmulator, app_name: str) -> None:
    import modal

    bare = modal.Sandbox.create(app=_app(app_name), timeout=60)
    _expect(bare.exec("python", "-c", "import numpy").wait() == 1, "numpy without installing it")
    bare.terminate()
    image = modal.Image.debian_slim().pip_install("numpy")
    sb = modal.Sandbox.create(app=_app(app_name), image=image, timeout=60)
    _expect(sb.exec("python", "-c", "import numpy").wait() == 0, "pip_install('numpy') missing")
    sb.terminate()


def check_rootfs_build_failure(emu: ModalEmulator, app_name: str) -> None:
    import modal
    import modal.exception

    image = modal.Image.debian_slim().apt_install("no-such-package-modal-emulator")
    try:
        modal.Sandbox.create(app=_app(app_name), image=image, timeout=60)
    except modal.exception.ImageBuildError:
        pass
    else:
        raise AssertionError("an unknown apt package did not fail the build")


ROOTFS_CHECKS: list[Check] = [
    check_rootfs_layers,
    check_rootfs_isolation,
    check_rootfs_pip_install,
    check_rootfs_build_failure,
]


def _point_client_at(emu: EmulatorThread) -> None:
    """Point the in-process client at `emu`, before or after `modal` was imported."""
    for name in [n for n in os.environ if is_client_var(n)]:
        del os.environ[name]
    os.environ.update({k: v for k, v in emu.env().items() if k != "HOME"})
    client_module = sys.modules.get("modal.client")
    if client_module is not None:
        client_module._Client._client_from_env = None
    forget_server_state()


def _run_checks(
    images: ImageMode, checks: list[Check], verbose: bool
) -> tuple[int, list[str], set[str]]:
    """Run `checks` against a fresh emulator: (failures, unimplemented RPCs called, RPCs called)."""
    with EmulatorThread(images=images) as emu:
        # Point the in-process client at the emulator *before* importing modal: its config
        # module reads MODAL_CONFIG_PATH at import time.
        _point_client_at(emu)
        app_name = f"verify-{uuid.uuid4().hex[:8]}"
        failures = 0
        for check in checks:
            start = time.monotonic()
            try:
                check(emu.emulator, app_name)
            except Exception as exc:
                failures += 1
                took = time.monotonic() - start
                print(f"FAIL {check.__name__} ({took:.1f}s): {type(exc).__name__}: {exc}")
                if verbose:
                    traceback.print_exc()
            else:
                print(f"ok   {check.__name__} ({time.monotonic() - start:.1f}s)")
        counts = emu.emulator.call_counts()
        if verbose:
            print("RPC calls:", ", ".join(f"{name}={n}" for name, n in sorted(counts.items())))
        return failures, sorted(set(emu.emulator.unimplemented_calls())), set(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testing.modal_emulator.verify")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print tracebacks and RPC counts"
    )
    parser.add_argument(
        "--require-rootfs",
        action="store_true",
        default=os.environ.get("CI_REQUIRE_ROOTFS") == "1",
        help="fail if image mode rootfs cannot be verified on this machine",
    )
    args = parser.parse_args(argv)

    # modal.config reads its TOML file when first imported: make that an empty one, never
    # ~/.modal.toml. Each emulator then points the client at itself through the environment.
    for name in [n for n in os.environ if is_client_var(n)]:
        del os.environ[name]
    os.environ["MODAL_CONFIG_PATH"] = os.devnull
    import modal

    version = modal.__version__
    print(f"modal client {version} (emulator pinned to {PINNED_MODAL_VERSION})")
    if version != PINNED_MODAL_VERSION:
        print("  note: not the pinned version; the results below tell whether that matters")
    failures, missing, called = _run_checks("host", CHECKS, args.verbose)
    unused = sorted(_implemented_rpcs() - called - _OPTIONAL_RPCS)
    reason = rootfs_unavailable_reason()
    if reason is None:
        print("image mode rootfs:")
        rootfs_failures, rootfs_missing, _ = _run_checks("rootfs", ROOTFS_CHECKS, args.verbose)
        failures += rootfs_failures
        missing = sorted(set(missing) | set(rootfs_missing))
    else:
        print(f"image mode rootfs NOT verified: {reason}")
        if args.require_rootfs:
            failures += 1
    print(f"unimplemented RPCs called: {', '.join(missing) if missing else 'none'}")
    print(f"implemented RPCs not called: {', '.join(unused) if unused else 'none'}")
    ok = failures == 0 and not missing
    print("VERIFIED" if ok else "NOT VERIFIED")
    return 0 if ok else 1


def _implemented_rpcs() -> set[str]:
    """Method names the emulator implements (those not generated by fill_unimplemented)."""
    from .control_plane import ControlPlaneServicer
    from .faults import is_unimplemented
    from .router import RouterServicer

    names: set[str] = set()
    for cls in (ControlPlaneServicer, RouterServicer):
        for name in dir(cls):
            attr = getattr(cls, name)
            if name[:1].isupper() and callable(attr) and not is_unimplemented(attr):
                names.add(name)
    return names


if __name__ == "__main__":
    sys.exit(main())
