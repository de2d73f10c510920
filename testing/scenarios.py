"""End-to-end scenarios shared by two targets: the in-repo emulator (tests/emulator/
test_scenarios.py) and real Modal (`make live-check`, testing/live_check.py). ONE list,
`SCENARIOS`; each drives the real `modal-offload` CLI in a scratch workspace and HOME, so the
ledger, state and sandboxes it makes are its own.

A target says how the CLI reaches Modal (`env`) and which scenarios it can run (`skip`): a
scenario whose point is a real image (`needs_images`) only means something where images are
really built, i.e. on Modal or in the emulator's rootfs mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
# The demo's checksum for this payload (tests/test_heavy_remote.py checks it locally too).
DEMO_PAYLOAD = {"iterations": 2_000_000, "workers": 2}
DEMO_CHECKSUM = 3049778897579708928
# A small pure-Python package neither the emulator's host venv nor debian_slim carries.
DECLARED_PACKAGE = "tabulate"


class ScenarioFailed(Exception):
    """The scenario ran and the product did not do what a user would expect."""


class Target(Protocol):
    name: str

    def env(self) -> dict[str, str]:
        """Variables that point the CLI (and the modal client in it) at this target."""

    def skip(self, scenario: Scenario) -> str | None:
        """Why `scenario` cannot run on this target, or None."""


@dataclass
class Run:
    """One scenario's scratch world: HOME, ledger, workspaces, and the CLI inside it."""

    target: Target
    root: Path
    workspaces: list[Path] = field(default_factory=list)
    added_min: float = 0.0

    @property
    def home(self) -> Path:
        return self.root / "home"

    def base_env(self) -> dict[str, str]:
        scrub = ("MODAL_", "PRIMARY_MODAL_", "XDG_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(scrub)}
        home = self.home
        env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                   XDG_CONFIG_HOME=str(home / ".config"),
                   XDG_STATE_HOME=str(home / ".local" / "state"),
                   XDG_DATA_HOME=str(home / ".local" / "share"),
                   XDG_RUNTIME_DIR=str(home / ".run"), MODAL_OFFLOAD_HOST="0",
                   MODAL_OFFLOAD_BACKEND="modal", MODAL_OFFLOAD_HEARTBEAT_SECONDS="1")
        env.update(self.target.env())
        return env

    def workspace(self, name: str, config: str = "",
                  files: Mapping[str, str] | None = None) -> Path:
        ws = self.root / name
        ws.mkdir(parents=True)
        (ws / ".modal-offload.toml").write_text(config)
        for rel, text in (files or {}).items():
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            (ws / rel).write_text(text)
        self.workspaces.append(ws)
        return ws

    def cli(self, *args: str, cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "modal_offload", *args], cwd=cwd,
                              env={**self.base_env(), **(env or {})}, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def used_min(self) -> float:
        try:
            data: dict[str, Any] = json.loads(
                (self.home / ".primary_compute_modal_usage.json").read_text())
        except FileNotFoundError:
            return 0.0
        return float(data.get("used_min", 0.0))

    def add_usage(self, minutes: float) -> None:
        """Spend budget without remote time (so `cost` leaves it out)."""
        ws = self.workspaces[0] if self.workspaces else self.root
        out = self.cli("usage", "add", f"{minutes:.4f}", cwd=ws)
        expect(out.returncode == 0, "usage add", out)
        self.added_min += minutes

    def cleanup(self) -> None:
        """Stop every session the scenario opened (never raises)."""
        for ws in self.workspaces:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.cli("session", "stop", cwd=ws, timeout=180)


def expect(condition: bool, what: str, out: subprocess.CompletedProcess[bytes] | None = None,
           ) -> None:
    if condition:
        return
    detail = ""
    if out is not None:
        err = out.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f" (exit {out.returncode}: {err[-1] if err else 'no stderr'})"
    raise ScenarioFailed(f"{what}{detail}")


# ----------------------------------------------------------------------------- scenarios

def heavy_demo(run: Run) -> str:
    # The image must carry what primary_compute.py imports: declared here, explicitly.
    ws = run.workspace("heavy", 'pip_packages = ["numpy"]\n')
    shutil.copy(REPO / "primary_compute.py", ws / "primary_compute.py")
    out = run.cli("heavy", "--mode", "modal", "--payload", json.dumps(DEMO_PAYLOAD), cwd=ws)
    expect(out.returncode == 0, "heavy --mode modal", out)
    result = json.loads(out.stdout)
    expect(result.get("checksum") == DEMO_CHECKSUM,
           f"checksum {result.get('checksum')} != {DEMO_CHECKSUM}")
    expect(result.get("execution") == "modal", f"ran as {result.get('execution')!r}")
    return f"checksum {DEMO_CHECKSUM}"


def declared_package(run: Run) -> str:
    code = f"import {DECLARED_PACKAGE}; print('imported')"
    bare = run.workspace("bare")
    out = run.cli("exec", "--", "python", "-c", code, cwd=bare)
    expect(out.returncode == 1 and b"ModuleNotFoundError" in out.stderr,
           f"{DECLARED_PACKAGE} importable without declaring it", out)
    declared = run.workspace("declared", f'pip_packages = ["{DECLARED_PACKAGE}"]\n')
    out = run.cli("exec", "--", "python", "-c", code, cwd=declared)
    expect(out.returncode == 0 and out.stdout == b"imported\n",
           f"{DECLARED_PACKAGE} not importable once declared", out)
    return f"{DECLARED_PACKAGE}: missing without, imported with the declaration"


def sandbox_replacement(run: Run) -> str:
    ws = run.workspace("replace", files={"data/input.txt": "hello\n"})
    out = run.cli("exec", "--", "cat", "data/input.txt", cwd=ws)
    expect(out.returncode == 0 and out.stdout == b"hello\n", "first command", out)
    out = run.cli("session", "stop", cwd=ws)
    expect(out.returncode == 0, "session stop", out)
    # At once: the stopped sandbox must not still hold the name the new one needs.
    (ws / "data" / "input.txt").write_text("again\n")
    out = run.cli("exec", "--", "cat", "data/input.txt", cwd=ws)
    expect(out.returncode == 0 and out.stdout == b"again\n", "command after stop", out)
    return "stopped, replaced and re-synced"


def budget_capped_timeout(run: Run) -> str:
    ws = run.workspace("budget")
    cap = 1.0
    run.add_usage(cap - 0.15)  # 9 s of remote time left today
    started = time.monotonic()
    out = run.cli("exec", "--", "sleep", "300", cwd=ws,
                  env={"PRIMARY_MODAL_MAX_MIN_PER_DAY": str(cap)})
    took = time.monotonic() - started
    expect(out.returncode != 0, "sleep 300 was not stopped", out)
    expect(took < 120, f"stopped only after {took:.0f}s")
    over = run.used_min() - cap
    # The cap holds: at most a heartbeat and the sandbox's shutdown past it.
    expect(over < 0.1, f"charged {over:.3f} min past the daily cap")
    return f"stopped after {took:.0f}s, {max(0.0, over) * 60:.1f}s past the cap"


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Run], str]
    needs_images: bool = False  # meaningful only where images are really built


SCENARIOS: list[Scenario] = [
    Scenario("heavy demo", heavy_demo),
    Scenario("exec needing a declared package", declared_package, needs_images=True),
    Scenario("sandbox replacement", sandbox_replacement),
    Scenario("budget-capped timeout", budget_capped_timeout),
]


@dataclass
class Row:
    scenario: str
    status: str  # "ok", "FAIL" or "skip"
    seconds: float
    cost_min: float
    detail: str

    def line(self) -> str:
        return (f"{self.scenario:<34} {self.status:<5} {self.seconds:7.1f}s "
                f"{self.cost_min:8.3f} min  {self.detail}")


def run_scenario(scenario: Scenario, target: Target, scratch: Path | None = None) -> Row:
    """Run one scenario on `target` in a scratch folder (a new temp dir by default)."""
    reason = target.skip(scenario)
    if reason:
        return Row(scenario.name, "skip", 0.0, 0.0, reason)
    root = Path(tempfile.mkdtemp(prefix="mo-scenario-", dir=scratch))
    run = Run(target, root)
    run.home.mkdir()
    (run.home / ".run").mkdir(mode=0o700)
    started = time.monotonic()
    try:
        detail, status = scenario.run(run), "ok"
    except ScenarioFailed as exc:
        detail, status = str(exc), "FAIL"
    finally:
        run.cleanup()
    cost = max(0.0, run.used_min() - run.added_min)
    row = Row(scenario.name, status, time.monotonic() - started, cost, detail)
    shutil.rmtree(root, ignore_errors=True)
    return row
