"""Image mode rootfs: each image builder the project may use really runs or places files."""

from __future__ import annotations

from pathlib import Path

import modal

from testing.modal_emulator import ModalEmulator


def _out(sb: modal.Sandbox, *argv: str, workdir: str | None = None) -> str:
    proc = sb.exec(*argv, workdir=workdir)
    assert proc.wait() == 0, proc.stderr.read()
    out: str = proc.stdout.read()
    return out


def test_builders_install_and_place_files(
    modal_emulator_rootfs: ModalEmulator, app_name: str, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("idna\n")
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.txt").write_text("copied\n")
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 'mounted'\n")
    image = (
        modal.Image.debian_slim()
        .apt_install("jq")
        .uv_pip_install("six")
        .pip_install_from_requirements(str(requirements))
        .run_commands("echo built > /opt/built", "mkdir -p /opt/app", "rm /etc/issue")
        .add_local_dir(data, "/opt/data", copy=True)
        .workdir("/opt/app")
        .add_local_dir(pkg, "/root/mypkg")
    )
    app = modal.App.lookup(app_name, create_if_missing=True)
    sb = modal.Sandbox.create(app=app, image=image)
    assert _out(sb, "sh", "-c", "echo '{\"a\": 1}' | jq .a") == "1\n"
    assert _out(sb, "python", "-c", "import six, idna; print('ok')") == "ok\n"
    assert _out(sb, "cat", "/opt/built", "/opt/data/sub/x.txt") == "built\ncopied\n"
    assert _out(sb, "pwd") == "/opt/app\n"
    # A file a later layer deleted stays deleted (overlay whiteouts in layer diffs).
    assert _out(sb, "sh", "-c", "test -e /etc/issue || echo gone") == "gone\n"
    # add_local_dir(copy=False) is a mount placed at sandbox start, as on Modal.
    code = "import mypkg; print(mypkg.VALUE)"
    assert _out(sb, "python", "-c", code, workdir="/root") == "mounted\n"
    # uv came from the ghcr.io/astral-sh/uv image on Modal; here the same binary from PyPI.
    assert _out(sb, "/.uv/uv", "--version").startswith("uv ")


def test_project_dependencies_from_pyproject_and_uv_sync(
    modal_emulator_rootfs: ModalEmulator, app_name: str, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["six"]\n'
    )
    app = modal.App.lookup(app_name, create_if_missing=True)
    from_pyproject = modal.Image.debian_slim().pip_install_from_pyproject(
        str(project / "pyproject.toml")
    )
    sb = modal.Sandbox.create(app=app, image=from_pyproject)
    assert _out(sb, "python", "-c", "import six; print(six.__file__)").startswith(
        "/usr/local/lib/python3.11/"
    )
    # uv_sync: a project venv at /.uv/.venv, first on PATH (ENV PATH=/.uv/.venv/bin:$PATH).
    synced = modal.Sandbox.create(app=app, image=modal.Image.debian_slim().uv_sync(str(project)))
    assert _out(synced, "sh", "-c", "command -v python").strip() == "/.uv/.venv/bin/python"
    assert _out(synced, "python", "-c", "import six; print('ok')") == "ok\n"
