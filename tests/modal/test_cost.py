"""Cost honesty end to end (issue 15): the real CLI and the real `modal` client against the
emulator, whose own sandbox records are the provider's truth."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from testing.modal_emulator import ModalEmulator
from testing.modal_emulator.records import SandboxRecord
from tests.helpers import cli, ledger, make_workspace, spawn_cli

HEARTBEAT = 0.5
ENV = {"MODAL_OFFLOAD_BACKEND": "modal", "MODAL_OFFLOAD_HEARTBEAT_SECONDS": str(HEARTBEAT)}
SLOW = """
import time
def work(payload):
    time.sleep(payload.get("sleep", 0))
    return {"slept": payload.get("sleep", 0)}
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", 'heavy_entry = "slow:work"\n',
                          {"data/input.txt": "hello\n", "slow.py": SLOW})


def life(rec: SandboxRecord) -> float:
    end = rec.terminated_at if rec.terminated_at is not None else time.time()
    return end - rec.created_at


def test_two_concurrent_commands_in_one_sandbox_are_charged_once(
        modal_emulator: ModalEmulator, ws: Path, tmp_home: Path) -> None:
    assert cli("exec", "--", "true", cwd=ws, env=ENV).returncode == 0  # create it
    codes: list[int] = []

    def command() -> None:
        codes.append(cli("exec", "-c", "sleep 3", cwd=ws, env=ENV, timeout=60).returncode)

    threads = [threading.Thread(target=command) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [0, 0]
    assert cli("session", "stop", cwd=ws, env=ENV).returncode == 0
    [rec] = modal_emulator.sandboxes()
    charged_s = ledger(tmp_home)["used_min"] * 60
    # The sandbox's whole life, once (two meters would make it ~1.6x), never less.
    assert life(rec) - 0.5 <= charged_s <= life(rec) + 1.0, (charged_s, life(rec))


def test_a_killed_client_is_charged_to_the_sandboxes_end(
        modal_emulator: ModalEmulator, ws: Path, tmp_home: Path) -> None:
    env = {**ENV, "MODAL_OFFLOAD_IDLE_TIMEOUT": "2", "MODAL_OFFLOAD_HOST": "0"}
    proc = spawn_cli("exec", "-c", "echo started; sleep 4", cwd=ws, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
    proc.send_signal(signal.SIGKILL)  # no hang-up, no final charge: the command runs on
    proc.wait(10)
    [rec] = modal_emulator.sandboxes()
    deadline = time.time() + 60
    while modal_emulator.sandbox(rec.sandbox_id).running and time.time() < deadline:
        time.sleep(0.2)  # the sandbox ends on its own (command, then idle timeout)
    rec = modal_emulator.sandbox(rec.sandbox_id)
    assert not rec.running
    # The next command settles the dead sandbox: never less than its real life.
    assert cli("exec", "--", "true", cwd=ws, env=env).returncode == 0
    data = ledger(tmp_home)
    dead_life = life(rec)
    assert data["used_min"] * 60 >= dead_life - 0.5
    # and no more than its lease: the deadline is the upper bound when the end is unknown.
    assert data["used_min"] * 60 <= rec.timeout_secs + life(modal_emulator.sandboxes()[1]) + 1


def test_three_workspaces_with_ten_minutes_left(modal_emulator: ModalEmulator, tmp_path: Path,
                                                tmp_home: Path) -> None:
    assert cli("usage", "add", "170").returncode == 0  # 10 of 180 minutes left
    spaces = [make_workspace(tmp_path / f"ws{i}", files={"f.txt": f"{i}\n"}) for i in range(3)]
    results: dict[int, tuple[int, bytes]] = {}

    def start(i: int) -> None:
        out = cli("exec", "-c", "sleep 1", cwd=spaces[i], env={
            **ENV, "MODAL_OFFLOAD_WHEN_NO_BUDGET": "refuse"}, timeout=120)
        results[i] = (out.returncode, out.stderr)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = modal_emulator.sandboxes()
    # The provider's own records: every sandbox's timeout together is the most Modal could
    # ever bill, even if every laptop died now.
    assert sum(rec.timeout_secs for rec in records) <= 600 + HEARTBEAT
    refused = [err for code, err in results.values() if code != 0]
    assert len(records) + len(refused) == 3
    for err in refused:
        assert err.count(b"\n") == 1 and b"held by 1 live sandbox" in err, err


def test_reconcile_agrees_with_the_providers_bill(modal_emulator: ModalEmulator, ws: Path,
                                                 tmp_home: Path) -> None:
    # A scripted day: commands, a heavy call in a differently sized sandbox, idle time.
    assert cli("exec", "-c", "sleep 2", cwd=ws, env=ENV).returncode == 0
    small = {**ENV, "PRIMARY_MODAL_CPU": "2", "PRIMARY_MODAL_MEMORY_MB": "4096"}
    heavy = cli("heavy", "--mode", "modal", "--payload", '{"sleep": 2}', cwd=ws, env=small)
    assert heavy.returncode == 0, heavy.stderr
    gpu = cli("heavy", "--mode", "modal", "--gpu", "t4", "--payload", '{"sleep": 1}', cwd=ws,
              env=small)
    assert gpu.returncode == 0, gpu.stderr
    assert cli("exec", "-c", "sleep 1", cwd=ws, env=ENV).returncode == 0
    assert cli("session", "stop", cwd=ws, env=ENV).returncode == 0
    assert cli("session", "stop", cwd=ws, env=small).returncode == 0
    assert cli("session", "stop", cwd=ws, env={**small, "MODAL_OFFLOAD_GPU": "T4"}
               ).returncode == 0
    assert len(modal_emulator.sandboxes()) == 3
    assert all(not rec.running for rec in modal_emulator.sandboxes())
    out = cli("usage", "reconcile", "--json", cwd=ws, env=ENV)
    assert out.returncode == 0, out.stderr
    [line] = json.loads(out.stdout)["lines"]
    assert line["modal_usd"] > 0 and abs(line["diff_pct"]) <= 2.0, line
    text = cli("usage", "reconcile", cwd=ws, env=ENV).stdout.decode()
    assert line["day"] in text and "%" in text


def test_a_gpu_sandbox_is_its_own_session_and_is_priced(modal_emulator: ModalEmulator,
                                                        ws: Path, tmp_home: Path) -> None:
    assert cli("exec", "--", "true", cwd=ws, env=ENV).returncode == 0
    out = cli("exec", "--gpu", "a10g:2", "--", "true", cwd=ws, env=ENV)
    assert out.returncode == 0, out.stderr
    plain, gpu = modal_emulator.sandboxes()
    assert not plain.request.definition.resources.gpu_config.gpu_type
    config = gpu.request.definition.resources.gpu_config
    assert (config.gpu_type, config.count) == ("A10G", 2)
    assert len(gpu.sandbox_id) == len("sb-") + 22  # created through the V1 control plane
    assert gpu.name is not None and "-ga10gx2-" in gpu.name
    [lease] = [v for v in ledger(tmp_home)["leases"].values() if v["sandbox_id"] == gpu.sandbox_id]
    assert lease["usd_per_s"] > 2 * 0.000306  # two A10G, plus CPU and memory


def test_a_bad_gpu_is_one_line(ws: Path, tmp_home: Path) -> None:
    out = cli("exec", "--gpu", "Z100", "--", "true", cwd=ws, env=ENV)
    # exec's own failures are 125, so that 1..124 stay the command's codes (errors.py)
    assert out.returncode == 125 and out.stderr.count(b"\n") == 1
    assert b"unknown GPU type 'Z100'" in out.stderr
    heavy = cli("heavy", "--gpu", "H100:0", "--payload", "{}", cwd=ws, env=ENV)
    assert heavy.returncode == 2 and heavy.stderr.count(b"\n") == 1
    assert b"at least one GPU" in heavy.stderr
