"""The session host settles the sandboxes it knows at each heartbeat (issue 15): idle time is
charged while nobody runs a command, and a sandbox that ended releases its lease within a
heartbeat, without waiting for the next command."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.helpers import cli, ledger
from tests.host.helpers import wait_for


def test_idle_time_is_settled_and_the_lease_released(host_env: dict[str, str], ws: Path,
                                                     tmp_home: Path) -> None:
    env = {"MODAL_OFFLOAD_IDLE_TIMEOUT": "2"}
    assert cli("exec", "--", "true", cwd=ws, env=env).returncode == 0
    after_command = ledger(tmp_home)["used_min"]
    [lease] = ledger(tmp_home)["leases"].values()
    # Idle, with nobody running a command: the host charges the idle second...
    assert wait_for(lambda: ledger(tmp_home)["used_min"] > after_command + 0.9 / 60)
    # ...and once the local sandbox idles out (2 s), ends its lease within a heartbeat.
    assert wait_for(lambda: ledger(tmp_home)["leases"] == {}, timeout=15)
    life_s = ledger(tmp_home)["used_min"] * 60
    # Its life: the command, then 2 s idle; ended within a heartbeat (0.2 s) of that.
    assert 2 - 0.1 <= life_s <= min(time.time() - lease["created"], 2 + 1.5)
    status = cli("usage", "show", "--json", cwd=ws)
    assert json.loads(status.stdout)["live_sandboxes"] == []


def test_session_status_shows_age_idle_deadline_and_cost(host_env: dict[str, str], ws: Path,
                                                         tmp_home: Path) -> None:
    assert cli("exec", "-c", "sleep 0.5", cwd=ws).returncode == 0
    out = cli("session", "status", cwd=ws)
    text = out.stdout.decode()
    assert out.returncode == 0 and "age" in text and "idle" in text
    assert "deadline in" in text and "charged" in text and "$" in text
    data = json.loads(cli("session", "status", "--json", cwd=ws).stdout)
    assert data[0]["detail"]["charged_min"] >= 0.5 / 60 and "lease_deadline" in data[0]["detail"]
