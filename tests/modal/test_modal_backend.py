"""The Modal backend end to end: the real CLI and the real `modal` client against the in-repo
emulator (testing/modal_emulator). Reuse, replacement, budget cap, faults, metering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grpclib import Status

from testing.modal_emulator import ModalEmulator
from tests.helpers import cli, install_hint, ledger, make_workspace, spawn_cli

ENV = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": "0.5"}
# Read at import: the autouse tmp_home fixture scrubs MODAL_* from the environment.
LIVE_CREDENTIALS = {k: os.environ[k] for k in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")
                    if os.environ.get(k)}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", files={"data/input.txt": "hello\n"})


def run(ws: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return cli("exec", *args, cwd=ws, env={**ENV, **(env or {})}, timeout=timeout)


def creates(emu: ModalEmulator) -> int:
    return emu.call_counts()["SandboxCreateV2"]


def test_one_sandbox_is_reused_across_cli_invocations(modal_emulator: ModalEmulator,
                                                      ws: Path) -> None:
    for i in range(3):
        out = run(ws, "-c", f"echo {i} >> log.txt; cat log.txt | wc -l")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str(i + 1).encode()
    [rec] = modal_emulator.sandboxes()
    assert creates(modal_emulator) == 1 and rec.running
    assert rec.workdir == "/workspace" and rec.tags["modal-offload"] == "1"
    assert rec.exec_count >= 1 + 3 * 2  # setup; command + sync back each (sync up if changed)
    assert (ws / "log.txt").read_text() == "0\n1\n2\n"


def test_image_is_built_from_config_once(modal_emulator: ModalEmulator, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", 'apt_packages = ["git"]\npip_packages = ["requests"]\n')
    assert run(ws, "--", "true").returncode == 0
    built = modal_emulator.call_counts()["ImageGetOrCreate"]
    assert run(ws, "--", "true").returncode == 0
    [rec] = modal_emulator.sandboxes()
    commands = [c for layer in modal_emulator.image(rec.image_id)
                for c in layer.dockerfile_commands]
    assert any("apt-get install" in c and "git" in c for c in commands)
    assert any("pip install" in c and "requests" in c for c in commands)
    assert any("pip install" in c and "pathspec" in c for c in commands)
    assert modal_emulator.call_counts()["ImageGetOrCreate"] == built  # per create, not per exec
    assert (rec.cpu, rec.memory_mb) == (6.0, 14 * 1024)


def test_provider_timeout_is_capped_at_the_remaining_budget(modal_emulator: ModalEmulator,
                                                            ws: Path, tmp_home: Path) -> None:
    budget = {"PRIMARY_MODAL_MAX_MIN_PER_DAY": "3"}
    assert cli("usage", "add", "1").returncode == 0
    assert run(ws, "--", "true", env=budget).returncode == 0
    [first] = modal_emulator.sandboxes()
    remaining_s = (3 - ledger(tmp_home)["used_min"]) * 60
    assert 0 < first.timeout_secs <= 120 and first.timeout_secs <= remaining_s + 1
    tags = first.tags
    assert float(tags["mo-created"]) == pytest.approx(first.created_at, abs=5)
    assert int(tags["mo-timeout"]) == first.timeout_secs
    # Budget spent elsewhere: the live sandbox's deadline would overrun the cap, so it is
    # replaced by one whose provider-side timeout fits what remains.
    assert cli("usage", "add", "1").returncode == 0
    out = run(ws, "--", "cat", "data/input.txt", env=budget)
    assert out.returncode == 0 and out.stdout == b"hello\n"  # re-synced into the new one
    old, new = modal_emulator.sandboxes()
    assert old.termination_reason == "terminate" and new.running
    assert new.timeout_secs <= 60 and new.timeout_secs <= (3 - 2) * 60


def test_dead_sandbox_is_replaced_and_resynced(modal_emulator: ModalEmulator, ws: Path,
                                               tmp_home: Path) -> None:
    assert run(ws, "--", "true").returncode == 0
    modal_emulator.kill_sandbox(modal_emulator.sandboxes()[0].sandbox_id)
    (ws / "data" / "more.txt").write_text("more\n")
    out = run(ws, "-c", "cat data/input.txt data/more.txt")
    assert out.returncode == 0 and out.stdout == b"hello\nmore\n", out.stderr
    dead, live = modal_emulator.sandboxes()
    assert dead.termination_reason == "killed" and live.running
    # The dead one's lease was ended (its life settled once); only the live one holds one.
    data = ledger(tmp_home)
    assert set(data["history"][data["day"]]["by_source"]) == {"exec"}
    assert [lease["sandbox_id"] for lease in data["leases"].values()] == [live.sandbox_id]


def test_sandbox_killed_mid_command(modal_emulator: ModalEmulator, ws: Path,
                                    tmp_home: Path) -> None:
    proc = spawn_cli("exec", "-c",
                     "echo started; echo x > data/input.txt; touch made.txt; sleep 30",
                     cwd=ws, env=ENV)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    time.sleep(1.2)  # at least two heartbeats
    modal_emulator.kill_sandbox(modal_emulator.sandboxes()[0].sandbox_id)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 125
    assert err.count(b"\n") == 1 and b"terminated" in err, err
    assert (ws / "data" / "input.txt").read_text() == "hello\n" and not (ws / "made.txt").exists()
    assert ledger(tmp_home)["used_min"] * 60 >= 1.0


def test_rpc_errors_mid_command(modal_emulator: ModalEmulator, ws: Path,
                                tmp_home: Path) -> None:
    proc = spawn_cli("exec", "-c", "echo started; sleep 1; echo remote > data/input.txt",
                     cwd=ws, env=ENV)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    # The next exec (the sync-back agent) fails with a status the client does not retry.
    modal_emulator.fail_next("TaskExecStart", times=10, status=Status.FAILED_PRECONDITION,
                             message="worker lost")
    _, err = proc.communicate(timeout=30)
    # The command ran and succeeded: its own exit code comes back (#13), and the failed
    # sync back is one line; nothing was applied locally.
    assert proc.returncode == 0
    assert err.count(b"\n") == 1 and b"sync back failed" in err and b"worker lost" in err, err
    assert (ws / "data" / "input.txt").read_text() == "hello\n"
    assert ledger(tmp_home)["used_min"] > 0


def test_rejected_credentials_say_how_to_fix(modal_emulator: ModalEmulator, ws: Path) -> None:
    def reject() -> None:  # the first RPCs a CLI process makes
        for rpc in ("AuthTokenGet", "SandboxGetFromNameV2"):
            modal_emulator.fail_next(rpc, times=5, status=Status.UNAUTHENTICATED,
                                     message="Invalid token")

    reject()
    out = run(ws, "--", "true")
    assert out.returncode == 125
    assert out.stderr.count(b"\n") == 1
    assert b"rejected the credentials" in out.stderr and install_hint("auth", ws) in out.stderr
    reject()
    heavy = cli("heavy", "--mode", "modal", "--payload", "{}", cwd=ws, env=ENV)
    assert heavy.returncode == 4 and install_hint("auth", ws) in heavy.stderr


def test_auto_without_credentials_runs_locally_once(ws: Path) -> None:
    # No emulator and no credentials: MODAL_* are scrubbed and ~/.modal.toml is absent.
    out = run(ws, "--", sys.executable, "-c",
              "import os; print(os.environ.get('MODAL_OFFLOAD_REMOTE'))")
    assert out.returncode == 0 and out.stdout == b"None\n"
    assert out.stderr.count(b"\n") == 1 and b"running locally" in out.stderr
    assert install_hint("auth", ws) in out.stderr
    forced = run(ws, "--backend", "modal", "--", "true")
    assert forced.returncode == 125 and install_hint("auth", ws) in forced.stderr


SLOW = "import time\ndef work(p):\n    time.sleep(p.get('sleep', 0))\n    return {'ok': 1}\n"


def test_heavy_runs_in_the_sandbox(modal_emulator: ModalEmulator, tmp_path: Path,
                                   tmp_home: Path) -> None:
    ws = make_workspace(tmp_path / "ws", 'heavy_entry = "slow:work"\n', {"slow.py": SLOW})
    for mode in ("modal", "auto"):
        out = cli("heavy", "--mode", mode, "--payload", '{"sleep": 0.2}', cwd=ws, env=ENV)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["execution"] == "modal" and result["ok"] == 1
    assert creates(modal_emulator) == 1
    assert ledger(tmp_home)["used_min"] > 0


def test_workspace_modules_cannot_shadow_the_sandbox_agent(modal_emulator: ModalEmulator,
                                                           tmp_path: Path) -> None:
    """Issue 13: the agent runs `python -I` and finds our package through package_dir,
    not through PYTHONPATH (which -I ignores)."""
    files = {f"{m}.py": "raise SystemExit('shadowed')\n" for m in ("json", "tarfile", "argparse")}
    ws = make_workspace(tmp_path / "ws", files={**files, "a.txt": "a"})
    script = Path(sys.executable).parent / "modal-offload"  # unlike -m, no cwd on sys.path
    for _ in range(2):
        out = subprocess.run([str(script), "exec", "--", "echo", "hi"], cwd=ws,
                             env={**os.environ, **ENV}, capture_output=True, timeout=60)
        assert (out.returncode, out.stdout) == (0, b"hi\n"), out.stderr
    [rec] = modal_emulator.sandboxes()
    agents = [e.argv for e in rec.execs if "modal_offload.sync.remote" in e.argv]
    assert agents and all(a[a.index("python"):][1:2] == ["-I"] for a in agents)
    assert all(a[a.index("modal_offload.sync.remote") - 1] == "/root" for a in agents)


def test_session_status_and_stop(modal_emulator: ModalEmulator, ws: Path,
                                 tmp_home: Path) -> None:
    assert run(ws, "--", "true").returncode == 0
    [rec] = modal_emulator.sandboxes()
    before = ledger(tmp_home)["used_min"]
    time.sleep(1)
    status = cli("session", "status", cwd=ws, env=ENV)
    assert status.returncode == 0, status.stderr
    line = status.stdout.decode()
    assert rec.sandbox_id in line and "alive" in line and "charged" in line and "idle" in line
    data = json.loads(cli("session", "status", "--json", cwd=ws, env=ENV).stdout)
    detail = data[0]["detail"]
    assert detail["sandbox_id"] == rec.sandbox_id and detail["charged_min"] > 0
    stop = cli("session", "stop", cwd=ws, env=ENV)
    assert stop.returncode == 0 and b"stopped" in stop.stdout
    assert modal_emulator.sandbox(rec.sandbox_id).termination_reason == "terminate"
    after = ledger(tmp_home)
    # The idle second between the command and the stop was billed by Modal: charged (by
    # the status, which settles up to now, and the stop), and the whole life only once.
    assert after["used_min"] - before >= 0.9 / 60
    final = modal_emulator.sandbox(rec.sandbox_id)
    assert final.terminated_at is not None
    assert after["used_min"] * 60 <= final.terminated_at - final.created_at + 1.0
    assert after["leases"] == {}  # ended: what it did not use is released
    assert b"no live" in cli("session", "status", cwd=ws, env=ENV).stdout


def test_backend_lookup_does_not_import_modal(tmp_path: Path) -> None:
    code = ("import sys; from modal_offload.backends import get_backend; "
            "b = get_backend('modal'); b.unavailable_reason(); print('modal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert out.stdout == b"False\n", out.stderr


@pytest.mark.skipif(len(LIVE_CREDENTIALS) < 2,
                    reason="live Modal smoke test: needs real MODAL_TOKEN_ID/MODAL_TOKEN_SECRET")
def test_live_modal_smoke(tmp_path: Path) -> None:  # pragma: no cover - needs the real cloud
    ws = make_workspace(tmp_path / "ws", files={"in.txt": "live\n"})
    env = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_APP_NAME": "modal-offload-smoke",
           "MODAL_TIMEOUT_SECONDS": "300", **LIVE_CREDENTIALS}
    try:
        out = cli("exec", "-c", "cat in.txt; echo back > out.txt", cwd=ws, env=env, timeout=600)
        assert out.returncode == 0 and out.stdout == b"live\n", out.stderr
        assert (ws / "out.txt").read_text() == "back\n"
    finally:
        cli("session", "stop", cwd=ws, env=env, timeout=120)
