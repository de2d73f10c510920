"""`Sandbox.snapshot_filesystem` and sandboxes created from its image, in both image modes:
the real client against the emulator (what batch's one upload relies on, issue 18)."""

from __future__ import annotations

import modal
import pytest

from testing.modal_emulator import ModalEmulator


def _out(sb: modal.Sandbox, script: str) -> str:
    proc = sb.exec("sh", "-c", script)
    assert proc.wait() == 0, proc.stderr.read()
    out: str = proc.stdout.read()
    return out


@pytest.mark.parametrize("mode", ["host", "rootfs"])
def test_a_new_sandbox_starts_from_the_snapshot(mode: str,
                                                request: pytest.FixtureRequest) -> None:
    emu: ModalEmulator = request.getfixturevalue(
        "modal_emulator" if mode == "host" else "modal_emulator_rootfs")
    app = modal.App.lookup("snapshots", create_if_missing=True)
    first = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), workdir="/workspace")
    # Relative paths: the host mode maps working folders into the sandbox, never argv.
    _out(first, "mkdir -p d && echo one > d/a && echo gone > b && ln -s d/a link && rm b")
    if mode == "rootfs":
        _out(first, "rm /etc/debian_version")  # a file of the image itself: a whiteout
    image = first.snapshot_filesystem()
    _out(first, "echo later > d/a")  # after the snapshot: not in it
    second = modal.Sandbox.create(app=app, image=modal.Image.from_id(image.object_id),
                                  workdir="/workspace")
    assert _out(second, "cat d/a; readlink link; ls") == "one\nd/a\nd\nlink\n"
    if mode == "rootfs":
        assert _out(second, "test -e /etc/debian_version || echo absent") == "absent\n"
        assert _out(second, "test -e /etc/os-release && echo kept") == "kept\n"
    # The snapshot's sandbox is unaffected by the new one, and vice versa.
    _out(second, "echo two > d/a")
    assert _out(first, "cat d/a") == "later\n"
    for sb in (first, second):
        sb.terminate()
    assert {rec.image_id for rec in emu.sandboxes()} >= {image.object_id}
