"""Environment parity end to end (issue 12): the real CLI and the real `modal` client against
the emulator in rootfs mode, which builds each image for real (Debian bookworm, PyPI) and
runs every sandbox inside it, isolated from this machine. Workspaces are made by the tests.

Every test here needs rootfs mode (root, Linux, mmdebstrap); the fixture skips elsewhere and
CI (CI_REQUIRE_ROOTFS=1) fails instead of skipping. Images are cached by layer across tests,
so the workspaces share dependency sets where they can.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from testing.modal_emulator import ModalEmulator
from tests.helpers import REPO, cli, ledger, make_workspace

pytestmark = pytest.mark.timeout(1200)
ORIGINAL_CHECKSUM = 3427908807260612608  # the default payload's, as the original toolkit printed
DEMO_PAYLOAD = '{"iterations":24000000,"workers":6}'


@pytest.fixture
def env() -> dict[str, str]:
    # A unique app per test: apps outlive emulator resets.
    return {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_APP_NAME": f"parity-{uuid.uuid4().hex[:10]}",
            "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "1"}


def run(ws: Path, env: dict[str, str], *args: str,
        extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return cli(*args, cwd=ws, env={**env, **(extra or {})}, timeout=900)


def notices(out: subprocess.CompletedProcess[bytes]) -> list[str]:
    return [line for line in out.stderr.decode().splitlines() if line.startswith("modal-offload:")]


def test_requirements_demo_runs_with_its_numpy_and_follows_a_change(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, tmp_home: Path,
        env: dict[str, str]) -> None:
    ws = make_workspace(tmp_path / "demo", files={"requirements.txt": "numpy\n"})
    shutil.copy(REPO / "primary_compute.py", ws / "primary_compute.py")
    heavy = run(ws, env, "heavy", "--mode", "modal", "--payload", DEMO_PAYLOAD)
    assert heavy.returncode == 0, heavy.stderr
    result = json.loads(heavy.stdout)
    assert (result["checksum"], result["execution"]) == (ORIGINAL_CHECKSUM, "modal")
    [first] = modal_emulator_rootfs.sandboxes()
    # The very next command after a new requirements line runs in the new image, says so
    # in one line, and the old sandbox is ended and its time settled.
    (ws / "requirements.txt").write_text("numpy\nsix==1.16.0\n")
    out = run(ws, env, "exec", "--", "python", "-c", "import six; print(six.__version__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"1.16.0\n"
    [said] = notices(out)
    assert said.startswith("modal-offload: the remote image changed (requirements: "
                           "+six==1.16.0): new session mo-demo-")
    assert said.endswith(f"; ended {first.name}")
    old = modal_emulator_rootfs.sandbox(first.sandbox_id)
    assert old.terminated_at is not None and old.termination_reason == "terminate"
    # Its lease is ended (issue 15): charged up to the move, the rest released.
    data = ledger(tmp_home)
    assert first.sandbox_id not in [v["sandbox_id"] for v in data["leases"].values()]
    assert data["used_min"] > 0


def test_a_program_missing_from_the_image_runs_locally_with_the_fix(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, env: dict[str, str]) -> None:
    ws = make_workspace(tmp_path / "bare")
    host_only = shutil.which("rsync") or shutil.which("git")
    assert host_only, "CI installs rsync and git on the host"
    name = Path(host_only).name
    first = run(ws, env, "exec", "--", name, "--version")
    local = subprocess.run([name, "--version"], capture_output=True, check=True)
    assert first.returncode == 0 and first.stdout == local.stdout
    assert notices(first) == [
        f"modal-offload: running {name} locally: {name} is not in the remote image: add "
        f'`[image] apt = ["{name}"]` (or the package that provides it) to '
        ".modal-offload.toml, or `[image] pip`"]
    [sandbox] = modal_emulator_rootfs.sandboxes()
    execs = len(sandbox.execs)
    again = run(ws, env, "exec", "--", name, "--version")
    assert again.returncode == 0 and notices(again) == []  # once an hour
    assert len(modal_emulator_rootfs.sandbox(sandbox.sandbox_id).execs) == execs  # no remote
    refused = run(ws, env, "exec", "--", name, "--version",
                  extra={"MODAL_OFFLOAD_WHEN_MISSING_PROGRAM": "refuse"})
    assert refused.returncode == 125 and refused.stdout == b""
    assert f"{name} is not in the remote image" in refused.stderr.decode()
    # With the fix the notice names, the program is there and runs remotely.
    (ws / ".modal-offload.toml").write_text(f'[image]\napt = ["{name}"]\n')
    fixed = run(ws, env, "exec", "-c", f"command -v {name}; echo remote=$MODAL_OFFLOAD_REMOTE")
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.decode().splitlines() == [f"/usr/bin/{name}", "remote=1"]


def _summary(out: bytes) -> str:
    """pytest -q's last line without its timing: `4 passed in 0.03s` -> `4 passed`."""
    import re

    return re.sub(r" in [0-9.]+s", "", out.decode().strip().splitlines()[-1])


def test_uv_project_runs_its_own_pytest_suite_remotely(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, env: dict[str, str]) -> None:
    ws = tmp_path / "tally"
    shutil.copytree(Path(__file__).parent / "data" / "uvproject", ws)
    make_workspace(ws)
    local = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=ws, capture_output=True, env={**os.environ,
                                                             "PYTHONPATH": str(ws / "src")})
    remote = run(ws, env, "exec", "--", "pytest", "-q", "-p", "no:cacheprovider")
    assert remote.returncode == local.returncode == 0, remote.stdout + remote.stderr
    assert _summary(remote.stdout) == _summary(local.stdout) == "4 passed"
    shown = json.loads(run(ws, env, "env", "show", "--json").stdout)
    assert [s["kind"] for s in shown["spec"]["steps"]] == ["uv_sync"]
    assert shown["spec"]["pythonpath"] == ["src"]


def test_node_project_runs_node_remotely_and_env_check_compares_both_sides(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, env: dict[str, str]) -> None:
    node = shutil.which("node")
    assert node, "CI installs node on the host"
    local_version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                   check=True).stdout.strip()
    ws = make_workspace(tmp_path / "web", files={
        "package.json": '{"name": "web", "scripts": {"test": "node -e 1"}}',
        "requirements.txt": "pytest==8.3.4\n"})
    out = run(ws, env, "exec", "--", "node", "-e",
              "console.log(process.version, process.env.MODAL_OFFLOAD_REMOTE)")
    assert out.returncode == 0, out.stderr
    remote_version, remote = out.stdout.decode().split()
    assert remote == "1"  # it ran remotely, in the image
    shown = json.loads(run(ws, env, "env", "show", "--json").stdout)
    [major] = [s["args"][0] for s in shown["spec"]["steps"] if s["kind"] == "node"]
    assert remote_version.startswith(f"v{major}.")
    if local_version.split(".")[0] in ("v20", "v22", "v24"):  # lines PyPI ships
        assert remote_version.split(".")[0] == local_version.split(".")[0]  # the same line
    assert run(ws, env, "exec", "--", "npm", "--version").returncode == 0

    check = run(ws, env, "env", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.decode().splitlines()
    assert lines[0].startswith("image ") and "python 3.11." in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.startswith("  ")}
    assert {"python", "node", "npm", "pytest"} <= set(rows)
    assert all(rows[n][1] == "ok" for n in ("python", "node", "npm", "pytest"))
    assert rows["node"][3] == remote_version and rows["node"][5] == local_version

    doctor = json.loads(run(ws, env, "doctor", "--json").stdout)
    [row] = [r for r in doctor["checks"] if r["check"] == "remote image"]
    assert row["status"] == "ok" and "has python, node, npm, pytest" in row["detail"]

    missing = run(ws, env, "env", "check", "--json",
                  extra={"MODAL_OFFLOAD_REMOTE_ALWAYS": "rsync"})
    assert missing.returncode == 1
    result = json.loads(missing.stdout)
    assert result["missing"] == ["rsync"] and result["ok"] is False
    assert [s.sandbox_id for s in modal_emulator_rootfs.sandboxes() if s.running] != []


def test_a_failing_build_says_which_step_and_why(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, env: dict[str, str]) -> None:
    ws = make_workspace(tmp_path / "broken", files={
        "requirements.txt": "no-such-package-modal-offload-xyz==1.0\n"})
    out = run(ws, env, "exec", "--", "true")
    assert out.returncode == 125
    said = notices(out)
    assert said[-1].startswith("modal-offload: the remote image ")
    assert "failed to build at `RUN python -m pip install -r /.requirements.txt`: ERROR: " \
           "No matching distribution found for no-such-package-modal-offload-xyz==1.0" in said[-1]
    log = said[-1].rsplit("build log: ", 1)[1]
    assert "no-such-package-modal-offload-xyz" in Path(log).read_text()
    assert "Traceback" not in out.stderr.decode()


def test_fresh_clone_heavy_modal_gives_the_original_checksum(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, env: dict[str, str]) -> None:
    # What a newcomer has: the committed tree, nothing built, nothing installed remotely.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
                   check=True, capture_output=True)
    out = run(clone, env, "heavy", "--mode", "modal", "--payload", DEMO_PAYLOAD)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["checksum"], result["execution"]) == (ORIGINAL_CHECKSUM, "modal")
    shown = json.loads(run(clone, env, "env", "show", "--json").stdout)
    assert [s["kind"] for s in shown["spec"]["steps"]] == ["pyproject"]  # its numpy, etc.


def test_auto_heavy_falls_back_when_the_image_lacks_a_local_module(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, tmp_home: Path,
        env: dict[str, str]) -> None:
    # numpy is installed here but not declared by the workspace, so not in its image.
    ws = make_workspace(tmp_path / "undeclared")
    shutil.copy(REPO / "primary_compute.py", ws / "primary_compute.py")
    payload = '{"iterations":200000,"workers":2}'
    auto = run(ws, env, "heavy", "--mode", "auto", "--payload", payload)
    assert auto.returncode == 0, auto.stderr
    assert json.loads(auto.stdout)["execution"] == "local"
    [said] = [n for n in notices(auto) if "running locally" in n]
    assert "the remote image lacks the Python module 'numpy', which is installed here" in said
    strict = run(ws, env, "heavy", "--mode", "modal", "--payload", payload)
    assert strict.returncode == 4 and b"lacks the Python module 'numpy'" in strict.stderr


def unique_six() -> str:
    """A requirement no earlier build had (a marker that is always true): an image the
    server has already built shows no build at all, on Modal as here."""
    return f'six==1.16.0 ; platform_machine != "t-{uuid.uuid4().hex[:8]}"\n'


def on_terminal(ws: Path, env: dict[str, str],
                *argv: str) -> tuple[subprocess.CompletedProcess[bytes], str]:
    """The CLI with its stderr on a terminal (a pty), stdout piped: (result, terminal text)."""
    import pty

    master, slave = pty.openpty()
    terminal = bytearray()

    def drain() -> None:  # concurrently: a full pty would block the build's output
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            terminal.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "modal_offload", *argv], cwd=ws,
                              env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=slave,
                              stdin=subprocess.DEVNULL, timeout=900)
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return proc, bytes(terminal).decode(errors="replace")


def test_a_first_build_shows_its_log_on_a_terminal_and_keeps_stdout_clean(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, env: dict[str, str]) -> None:
    ws = make_workspace(tmp_path / "tty", files={"requirements.txt": unique_six()})
    proc, text = on_terminal(ws, env, "exec", "--", "python", "-c", "print(42)")
    assert proc.returncode == 0 and proc.stdout == b"42\n"
    # Modal's own build output: the steps (layers may come from the machine-wide cache).
    assert "Building image im-" in text and "pip install -r /.requirements.txt" in text
    assert "preparing the remote image" not in text  # the log itself says it


def test_an_unsupported_python_gets_the_nearest_supported_one_with_a_notice(
        modal_emulator_rootfs: ModalEmulator, tmp_path: Path, env: dict[str, str]) -> None:
    # A Python 3.10 laptop, told by the same setting the image follows (`[image] python`).
    ws = make_workspace(tmp_path / "py310", '[image]\npython = "3.10"\n')
    out = run(ws, env, "exec", "--", "python", "-c", "import sys; print(sys.version_info[:2])")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"(3, 11)\n"
    assert notices(out) == ["modal-offload: [image] python 3.10 is not supported by Modal's "
                            "image builder; the remote runs Python 3.11 (set [image] python "
                            "to choose)"]
    assert notices(run(ws, env, "exec", "--", "true")) == []  # once an hour


def test_through_the_session_host(modal_emulator_rootfs: ModalEmulator, tmp_path: Path,
                                  tmp_home: Path, env: dict[str, str]) -> None:
    from tests.host.helpers import host_pids, stop_hosts

    hosted = {**env, "MODAL_OFFLOAD_HOST": "1"}
    six = unique_six()
    ws = make_workspace(tmp_path / "hosted", files={"requirements.txt": six})
    try:
        # A first build on a terminal: the host hands the command back to the client, whose
        # terminal shows Modal's build log.
        proc, text = on_terminal(ws, hosted, "exec", "--", "python", "-c", "print(7)")
        assert proc.returncode == 0 and proc.stdout == b"7\n", text
        assert "Building image im-" in text
        assert host_pids(tmp_home)  # the host is up: later commands go through it
        name = Path(shutil.which("rsync") or "git").name
        missing = run(ws, hosted, "exec", "--", name, "--version")
        assert missing.returncode == 0 and missing.stdout.startswith(
            subprocess.run([name, "--version"], capture_output=True, check=True).stdout[:20])
        assert notices(missing) == [
            f"modal-offload: running {name} locally: {name} is not in the remote image: add "
            f'`[image] apt = ["{name}"]` (or the package that provides it) to '
            ".modal-offload.toml, or `[image] pip`"]
        (ws / "requirements.txt").write_text(six + "numpy\n")
        moved = run(ws, hosted, "exec", "--", "python", "-c", "import numpy, six; print(1)")
        assert moved.returncode == 0 and moved.stdout == b"1\n", moved.stderr
        [said] = notices(moved)
        assert "the remote image changed (requirements: +numpy): new session" in said
    finally:
        stop_hosts(tmp_home)
