"""The image spec a workspace gets (image/spec.py, image/cache.py): which files map to which
steps, what moves the hash, and that the per-command check notices every edit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modal_offload import config
from modal_offload.backends import _modal_image
from modal_offload.errors import ConfigError
from modal_offload.image import cache, pyversion, spec
from tests.helpers import make_workspace

UV_PYPROJECT = '[project]\nname = "demo"\nversion = "0.1"\ndependencies = ["rich"]\n'


def current(ws: Path) -> spec.ImageSpec:
    return cache.current(ws, config.load(ws))


def step(image: spec.ImageSpec, kind: str) -> spec.Step:
    found = image.step(kind)
    assert found is not None, kind
    return found


def kinds(image: spec.ImageSpec) -> list[str]:
    return [s.kind for s in image.steps]


def test_first_declared_dependency_file_wins(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w", files={
        "pyproject.toml": UV_PYPROJECT, "requirements.txt": "numpy==2.1.0\n",
        "environment.yml": "dependencies:\n  - numpy\n"})
    assert kinds(current(ws)) == ["requirements"]
    (ws / "uv.lock").write_text("version = 1\n")
    image = current(ws)
    assert kinds(image) == ["uv_sync"] and step(image, "uv_sync").files == ("pyproject.toml",
                                                                             "uv.lock")
    calls = [c[0] for c in _modal_image.calls(image, ws)]
    assert calls == ["debian_slim", "pip_install", "uv_sync", "run_commands",
                     "add_local_python_source"]


def test_config_lists_files_and_image_keys(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w", (
        '[image]\ndeps = ["requirements.txt", "requirements-dev.txt"]\napt = ["jq"]\n'
        'pip = ["rich"]\ncommands = ["echo built > /built"]\nenv = {APP_MODE = "test"}\n'
        'python = "3.12"\n'), files={"requirements.txt": "numpy\n-r requirements-base.txt\n",
                                    "requirements-base.txt": "pandas  # base\n",
                                    "requirements-dev.txt": "pytest\n-e .\n",
                                    "package.json": "{}"})
    image = current(ws)
    assert image.python == "3.12"
    assert kinds(image) == ["apt", "node", "requirements", "pip", "commands", "env"]
    assert step(image, "requirements").args == ("numpy", "pandas", "pytest")
    assert any("-e ." in n for n in image.notes)  # dropped, and said so
    flat = _modal_image.calls(image, ws)[5][1][0]  # the flattened requirements file
    assert Path(flat).read_text() == "numpy\npandas\npytest\n"
    make_workspace(ws, '[image]\ndeps = ["nope.txt"]\n')
    with pytest.raises(ConfigError, match=r"nope\.txt"):
        current(ws)


def test_original_env_names_still_shape_the_image(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(tmp_path / "w")
    monkeypatch.setenv("MODAL_APT_PACKAGES", "git curl")
    monkeypatch.setenv("MODAL_PIP_PACKAGES", "requests")
    image = current(ws)
    assert step(image, "apt").args == ("git", "curl")
    assert step(image, "pip").args == ("requests",)


def test_hash_follows_what_the_image_holds_not_cosmetics(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w", files={"pyproject.toml": UV_PYPROJECT})
    first = current(ws)
    assert kinds(first) == ["pyproject"]
    (ws / "pyproject.toml").write_text(UV_PYPROJECT.replace('"0.1"', '"0.2"') + "# note\n")
    assert current(ws).hash == first.hash  # version and comments do not reach pip
    (ws / "pyproject.toml").write_text(UV_PYPROJECT.replace('["rich"]', '["rich", "numpy"]'))
    moved = current(ws)
    assert moved.hash != first.hash
    assert spec.changes(first.summary(), moved.summary()) == ["pyproject: +numpy"]


def test_same_size_same_mtime_edit_is_still_seen(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w", files={"requirements.txt": "numpy==2.1.0\n"})
    req = ws / "requirements.txt"
    first = current(ws)
    st = req.stat()
    req.write_text("numpy==2.0.0\n")  # same size
    os.utime(req, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime: ctime moves
    second = current(ws)
    assert step(second, "requirements").args == ("numpy==2.0.0",)
    assert second.hash != first.hash


def test_src_layout_is_on_the_remote_pythonpath(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w", files={"src/demo/__init__.py": ""})
    assert current(ws).pythonpath == ("src",)


def test_unsupported_local_python_gets_the_nearest_with_a_notice() -> None:
    assert pyversion.choose(local="3.11") == ("3.11", "")
    series, note = pyversion.choose(local="3.10")
    assert series == "3.11" and "3.10" in note and "3.11" in note
    assert pyversion.choose("3.9")[0] == "3.11"


def test_bad_image_settings_name_their_source(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w", '[image]\nenv = {"1BAD" = "x"}\n')
    with pytest.raises(ConfigError, match="1BAD"):
        config.load(ws)
    make_workspace(ws, '[image]\npython = "three"\n')
    with pytest.raises(ConfigError, match="Python series"):
        config.load(ws)
    make_workspace(ws, '[image]\nnode = false\n')
    assert config.load(ws).image_node == "no"


def test_a_failed_build_is_told_by_its_step_and_error() -> None:
    from modal_offload.backends._modal_build import failure_line

    log = ("Building image im-1\n\n=> Step 0: FROM base\n\n=> Step 1: RUN apt-get update\n"
           "Get:1 http://deb.debian.org bookworm InRelease\n\n"
           "=> Step 2: RUN apt-get install -y nosuchtool\nReading package lists...\n"
           "\x1b[31mE: Unable to locate package nosuchtool\x1b[0m\n"
           "Terminating task due to error: failed to run builder command\n")
    assert failure_line(log) == ("RUN apt-get install -y nosuchtool",
                                 "E: Unable to locate package nosuchtool")
    assert failure_line("") == ("", "")
