"""Image mode rootfs: images are built for real, layer by layer, and fail as Modal's do."""

from __future__ import annotations

import os
import shutil
import sys
import uuid

import modal
import pytest

from testing.modal_emulator import ModalEmulator
from testing.modal_emulator.rootfs import unavailable_reason


def test_rootfs_mode_is_available_where_ci_requires_it() -> None:
    # CI (.ci/run) runs as root with mmdebstrap installed and sets CI_REQUIRE_ROOTFS=1: the
    # rootfs tests must run there, never skip.
    reason = unavailable_reason()
    if os.environ.get("CI_REQUIRE_ROOTFS") == "1":
        assert reason is None, reason
    able = (
        sys.platform == "linux"
        and os.geteuid() == 0
        and all(shutil.which(t) for t in ("mmdebstrap", "unshare", "nsenter", "chroot"))
    )
    assert (reason is None) == able, reason


def _create(app_name: str, image: modal.Image) -> modal.Sandbox:
    app = modal.App.lookup(app_name, create_if_missing=True)
    return modal.Sandbox.create(app=app, image=image)


def _out(sb: modal.Sandbox, *argv: str, env: dict[str, str | None] | None = None) -> str:
    proc = sb.exec(*argv, env=env)
    assert proc.wait() == 0, proc.stderr.read()
    out: str = proc.stdout.read()
    return out


def test_a_failing_apt_step_fails_the_build_as_on_modal(
    modal_emulator_rootfs: ModalEmulator, app_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    image = modal.Image.debian_slim().apt_install("no-such-package-modal-emu")
    with modal.enable_output(), pytest.raises(modal.exception.ImageBuildError) as info:
        _create(app_name, image)
    assert isinstance(info.value, modal.exception.RemoteError)
    assert "Image build for im-" in str(info.value) and "failed" in str(info.value)
    # The build log streamed to the client says why, as Modal's does.
    log = capsys.readouterr().out
    assert "Unable to locate package no-such-package-modal-emu" in log
    assert "Terminating task due to error: failed to run builder command" in log
    assert not modal_emulator_rootfs.sandboxes()


def test_a_failing_pip_step_fails_the_build(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    image = modal.Image.debian_slim().pip_install("no-such-package-modal-emu")
    with pytest.raises(modal.exception.ImageBuildError, match=r"Image build for im-.* failed"):
        _create(app_name, image)


def test_a_python_the_emulator_cannot_provide_fails_in_one_line(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    with pytest.raises(modal.exception.ImageBuildError) as info:
        _create(app_name, modal.Image.debian_slim(python_version="3.12"))
    assert "Python 3.12 on bookworm is not available" in str(info.value)
    assert "python:3.11-slim-bookworm" in str(info.value)


def test_layers_are_cached_by_content(
    modal_emulator_rootfs: ModalEmulator, app_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = uuid.uuid4().hex
    steps = modal_emulator_rootfs.rootfs.layers.steps_run  # type: ignore[union-attr]
    first = modal.Image.debian_slim().run_commands(f"echo {marker} > /marker", "echo first")
    sb = _create(app_name, first)
    assert _out(sb, "cat", "/marker") == f"{marker}\n"
    ran = [s for s in steps if marker in s]
    assert len(ran) == 1
    # A different image sharing the first layer: only its own new step runs.
    second = modal.Image.debian_slim().run_commands(f"echo {marker} > /marker", "echo second")
    with modal.enable_output():
        sb2 = _create(app_name, second)
    assert [s for s in steps if marker in s] == ran
    assert steps[-1] == "RUN echo second"
    assert _out(sb2, "cat", "/marker") == f"{marker}\n"
    # The build log streamed the step that really ran.
    assert "second" in capsys.readouterr().out


def test_env_and_workdir_come_from_the_image(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    image = (
        modal.Image.debian_slim()
        .env({"GREETING": "hello there", "OVERRIDDEN": "image"})
        .workdir("/srv/app")
    )
    app = modal.App.lookup(app_name, create_if_missing=True)
    sb = modal.Sandbox.create(app=app, image=image, env={"OVERRIDDEN": "sandbox"})
    out = _out(sb, "sh", "-c", 'echo "$GREETING|$OVERRIDDEN|$HOME|$PATH"; pwd')
    assert out == (
        "hello there|sandbox|/root|"
        "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/srv/app\n"
    )
    assert _out(sb, "printenv", "OVERRIDDEN", env={"OVERRIDDEN": "exec"}) == "exec\n"
    # Nothing else from the host leaks in.
    assert "VIRTUAL_ENV" not in _out(sb, "env")


def test_build_secrets_reach_run_steps(modal_emulator_rootfs: ModalEmulator, app_name: str) -> None:
    secret = modal.Secret.from_dict({"BUILD_TOKEN": "s3cret"})
    image = modal.Image.debian_slim().run_commands(
        'echo "token=$BUILD_TOKEN" > /built-with', secrets=[secret]
    )
    sb = _create(app_name, image)
    assert _out(sb, "cat", "/built-with") == "token=s3cret\n"
    # A build secret is not part of the image's environment.
    assert _out(sb, "sh", "-c", 'echo "[$BUILD_TOKEN]"') == "[]\n"


def test_the_entrypoint_runs_inside_the_image(
    modal_emulator_rootfs: ModalEmulator, app_name: str
) -> None:
    app = modal.App.lookup(app_name, create_if_missing=True)
    sb = modal.Sandbox.create(
        "sh",
        "-c",
        "cat /etc/debian_version; command -v git; exit 3",
        app=app,
        image=modal.Image.debian_slim(),
    )
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 3
    [version] = sb.stdout.read().splitlines()  # and no git: the host's is not there
    assert version.startswith("12.")
