"""Installed as a new user would (a real `pipx install`, `uv tool install`, plain venv), used
from outside the repository, and every install hint names the fix for that installation.

The installs are real and reach PyPI for dependencies (caches outside HOME keep reruns fast);
each is made once per module. pipx and uv come from the test extra (pyproject.toml).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from testing.modal_emulator import ModalEmulator
from tests.helpers import REPO, cli, make_workspace

# Slow (the client's own retry timeouts / real pipx and uv installs): .ci/run runs this tier
# after `make test` so the default suite stays under 10 minutes.
pytestmark = pytest.mark.slow_tier

TOOLS = Path(sys.executable).parent  # pipx and uv, installed by the test extra
# Download caches outside any HOME (never the real one), kept across runs for speed.
CACHE = Path(tempfile.gettempdir()) / f"modal-offload-test-cache-{os.getuid()}"
PAYLOAD = '{"iterations":1000,"workers":1}'


@dataclass(frozen=True)
class Installed:
    kind: str
    prefix: Path  # the environment's root: what sys.prefix is for the installed CLI
    exe: Path  # the `modal-offload` a user runs
    env: dict[str, str]  # pipx/uv locations, for running the hinted fix

    def run(self, *args: str, cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, **self.env, **(env or {})}
        return subprocess.run([str(self.exe), *args], cwd=cwd, env=full, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def fix(self, command: str) -> None:
        """Run a hinted command as the user would paste it."""
        done = subprocess.run(shlex.split(command), env={**os.environ, **self.env}, text=True,
                              capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (command, done.stdout, done.stderr)

    def has_modal(self) -> bool:
        probe = subprocess.run([str(self.prefix / "bin" / "python"), "-c", "import modal"],
                               capture_output=True)
        return probe.returncode == 0


def _base_env(root: Path) -> dict[str, str]:
    bindir = root / "bin"
    bindir.mkdir(exist_ok=True)
    return {
        "HOME": str(root / "home"),
        "PATH": os.pathsep.join([str(bindir), str(TOOLS), "/usr/bin", "/bin"]),
        "PIP_CACHE_DIR": str(CACHE / "pip"), "UV_CACHE_DIR": str(CACHE / "uv"),
        "PIPX_HOME": str(root / "pipx"), "PIPX_BIN_DIR": str(bindir),
        "PIPX_MAN_DIR": str(root / "man"),
        "UV_TOOL_DIR": str(root / "uv-tools"), "UV_TOOL_BIN_DIR": str(bindir),
        "UV_PYTHON_DOWNLOADS": "never",  # the interpreter running the tests is used
        "UV_NATIVE_TLS": "1",  # trust the system's certificate store, as pip does
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def _install(kind: str, root: Path) -> Installed:
    env = _base_env(root)
    full = {**os.environ, **env}
    if kind == "pipx":
        argv = [str(TOOLS / "pipx"), "install", "--python", sys.executable, str(REPO)]
        prefix = root / "pipx" / "venvs" / "modal-offload"
    elif kind == "uv":
        argv = [str(TOOLS / "uv"), "tool", "install", "--python", sys.executable, str(REPO)]
        prefix = root / "uv-tools" / "modal-offload"
    else:  # a plain venv and its own pip
        prefix = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True)
        argv = [str(prefix / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO)]
    done = subprocess.run(argv, env=full, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL, cwd=root)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    exe = root / "bin" / "modal-offload" if kind != "venv" else prefix / "bin" / "modal-offload"
    assert exe.is_file()
    return Installed(kind, prefix, exe, env)


@pytest.fixture(scope="module", params=["pipx", "uv", "venv"])
def installed(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return _install(request.param, tmp_path_factory.mktemp(f"install-{request.param}"))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A project of the user's, far from our repository, holding their primary_compute.py."""
    return make_workspace(tmp_path / "project", files={
        "primary_compute.py": (REPO / "primary_compute.py").read_text()})


def _rows(out: str) -> dict[str, dict[str, str]]:
    return {r["check"]: r for r in json.loads(out)["checks"]}


EXPECTED_DEPENDENCY_FIX = {
    "pipx": "pipx inject modal-offload 'modal<1.7,>=1.6'",
    "uv": "uv tool upgrade --reinstall modal-offload",
    "venv": "{prefix}/bin/python -m pip install 'modal<1.7,>=1.6'",
}


def test_installs_and_works_outside_the_repository(installed: Installed, ws: Path) -> None:
    local = {"MODAL_OFFLOAD_BACKEND": "local"}
    version = installed.run("--version", cwd=ws)
    assert version.returncode == 0 and version.stdout.startswith("modal-offload ")
    helped = installed.run("--help", cwd=ws)
    assert helped.returncode == 0 and "exit codes:" in helped.stdout
    heavy = installed.run("heavy", "--mode", "local", "--payload", PAYLOAD, cwd=ws)
    assert heavy.returncode == 0, heavy.stderr
    assert json.loads(heavy.stdout)["iterations"] == 1000
    echoed = installed.run("exec", "--", "echo", "hi", cwd=ws, env=local)
    assert echoed.returncode == 0 and echoed.stdout == "hi\n", echoed.stderr
    doctor = installed.run("doctor", "--json", cwd=ws, env=local)
    rows = _rows(doctor.stdout)
    assert rows["version"]["status"] == "ok"
    # No credentials here: the fix is the Modal client of *this* environment (pipx and uv put
    # only our command on PATH), never a Makefile target of a repository the user lacks.
    fix = rows["modal credentials"]["fix"]
    assert fix == (f"run `{installed.prefix}/bin/modal setup` or set MODAL_TOKEN_ID and "
                   "MODAL_TOKEN_SECRET"), fix
    assert "make" not in fix
    # pipx and uv link our command into a folder on PATH: plain; a venv's is not on PATH.
    ours = "modal-offload" if installed.kind in ("pipx", "uv") else str(installed.exe)
    assert rows["shims"]["fix"] == f"{ours} shims install"


def test_reaches_modal_with_no_extra_step(installed: Installed, ws: Path,
                                          modal_emulator: ModalEmulator) -> None:
    # modal is a regular dependency: the fresh install talks to Modal (the emulator) as is.
    assert installed.has_modal()
    done = installed.run("heavy", "--mode", "modal", "--payload", PAYLOAD, cwd=ws,
                         env={"MODAL_OFFLOAD_BACKEND": "modal"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["iterations"] == 1000
    assert modal_emulator.call_counts()["SandboxCreateV2"] == 1


def test_missing_modal_hint_is_the_fix_for_this_installation(installed: Installed,
                                                             ws: Path) -> None:
    python = str(installed.prefix / "bin" / "python")
    if installed.kind == "uv":  # uv's venvs carry no pip
        remove = [str(TOOLS / "uv"), "pip", "uninstall", "--python", python, "modal"]
    elif installed.kind == "pipx":  # pipx venvs use pipx's shared pip
        remove = [str(TOOLS / "pipx"), "runpip", "modal-offload", "uninstall", "-y", "modal"]
    else:
        remove = [python, "-m", "pip", "uninstall", "-y", "modal"]
    subprocess.run(remove, env={**os.environ, **installed.env}, check=True, capture_output=True)
    assert not installed.has_modal()
    rows = _rows(installed.run("doctor", "--json", cwd=ws).stdout)
    row = rows["modal credentials"]
    assert row["detail"].startswith("the `modal` package is not installed")
    expected = EXPECTED_DEPENDENCY_FIX[installed.kind].format(prefix=installed.prefix)
    assert row["fix"] == f"run `{expected}`"
    installed.fix(expected)  # the hint, pasted, repairs the installation
    assert installed.has_modal()
    rows = _rows(installed.run("doctor", "--json", cwd=ws).stdout)
    assert "not installed" not in rows["modal credentials"]["detail"]


def test_repository_venv_hints_name_the_makefile(tmp_path: Path) -> None:
    # The suite runs in <repo>/.venv (`make test`): the Makefile's doors are the fixes, run
    # from wherever the user is.
    assert Path(sys.prefix) == REPO / ".venv", "run the tests through `make test`"
    inside = _rows(cli("doctor", "--json", cwd=REPO).stdout.decode())
    assert inside["modal credentials"]["fix"].startswith("run `make auth` or set")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = _rows(cli("doctor", "--json", cwd=elsewhere).stdout.decode())
    assert outside["modal credentials"]["fix"].startswith(
        f"run `make -C {shlex.quote(str(REPO))} auth` or set")
    make = shutil.which("make")
    assert make is not None
    dry = subprocess.run([make, "-n", "-C", str(REPO), "auth"], capture_output=True, text=True)
    assert dry.returncode == 0 and "modal setup" in dry.stdout
