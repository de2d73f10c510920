"""The warm session host (issue #8), measured in one run against its baselines.

Targets:
  - `exec -- true`, warm, no changes, through the host: added client overhead (wall time
    of the whole command minus the same gateway run inside an already-warm process)
    p50 <= 50 ms, p99 <= 100 ms; the in-process path (MODAL_OFFLOAD_HOST=0) for contrast.
  - no-change sync up of 10,000 files with the watcher: <= 5 ms (full scan for contrast).
  - thin client max RSS <= 25 MB.

Everything runs in a temporary HOME and runtime dir: the real ledger and a user's host
are never touched. `--backend local|modal|both` (modal: the real client against
testing/modal_emulator).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _common  # noqa: F401  (puts the repo on sys.path)
from _common import p50, p99, report

RUNS_HOST, RUNS_INPROC, RUNS_WARM, RUNS_SYNC = 50, 8, 30, 50
# The console script, as shims and the agent runner call it (`python -m` adds runpy).
_SCRIPT = Path(sys.executable).parent / "modal-offload"
CLIENT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "modal_offload"]


def isolate(tmp: Path) -> None:
    """Point this process (and every child) at a scratch home; drop the user's settings."""
    for name in list(os.environ):
        if name.startswith(("MODAL_", "PRIMARY_MODAL_", "XDG_")):
            del os.environ[name]
    home = tmp / "home"
    (home / ".run").mkdir(parents=True, mode=0o700)
    os.environ.update({
        "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".state"),
        "XDG_RUNTIME_DIR": str(home / ".run"), "MODAL_CONFIG_PATH": str(home / ".modal.toml"),
        "MODAL_OFFLOAD_HOST_IDLE_SECONDS": "120"})


def make_tree(root: Path, files: int) -> Path:
    root.mkdir(parents=True)
    (root / ".modal-offload.toml").write_text("")
    for i in range(files):
        folder = root / f"d{i // 100:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.txt").write_text(f"file {i}\n")
    return root


def cli_times(ws: Path, host: bool, runs: int) -> list[float]:
    env = {**os.environ, "MODAL_OFFLOAD_HOST": "1" if host else "0"}
    argv = [*CLIENT, "exec", "--no-sync-back", "--", "true"]
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ws, env=env, capture_output=True)
        out.append(time.perf_counter() - start)
        if done.returncode != 0 or done.stderr:
            raise SystemExit(f"exec failed ({done.returncode}): {done.stderr.decode()[-300:]}")
    return out


def warm_gateway_times(ws: Path, runs: int) -> list[float]:
    """The same command through an already-loaded gateway: what the host itself spends."""
    from modal_offload import config, workspace
    from modal_offload.gateway import Streams
    from modal_offload.host.runner import HostGateway
    from modal_offload.host.warm import Warm
    from modal_offload.remote_env import remote_environment

    wsp = workspace.require(ws)
    settings = config.load(wsp.root)
    warm = Warm()
    from modal_offload.backends._base import get_backend

    gateway = HostGateway(settings, warm.backend(get_backend(settings.backend)), wsp,
                          warm=warm, watcher=warm.watcher(wsp.root))
    env = remote_environment(os.environ, settings.forward_env)

    def once() -> None:
        report_ = gateway.run(["true"], cwd_rel=".", env=env,
                              streams=Streams(None, lambda b: None, lambda b: None),
                              sync_back=False)
        assert report_.exit_code == 0

    for _ in range(3):
        once()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        once()
        out.append(time.perf_counter() - start)
    warm.close()
    return out


def client_rss_kb(ws: Path) -> int:
    driver = ("import resource, subprocess, sys\n"
              f"subprocess.run({CLIENT!r} + ['exec', '--no-sync-back', '--', 'true'], check=True)\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", driver], cwd=ws, capture_output=True,
                         env={**os.environ, "MODAL_OFFLOAD_HOST": "1"}, check=True)
    return int(out.stdout)


def sync_times(tmp: Path) -> tuple[list[float], list[float]]:
    from modal_offload.backends._base import SessionSpec
    from modal_offload.backends.local import LocalBackend
    from modal_offload.host.runner import HintedSync
    from modal_offload.host.warm import BaselineMemo
    from modal_offload.host.watcher import Watcher
    from modal_offload.sync.client import WorkspaceSync

    root = make_tree(tmp / "big", 10_000)
    session = LocalBackend(tmp / "sandboxes").open_session(
        SessionSpec(name="mo-bench-sync", workspace=root))
    inner = WorkspaceSync(root, session, tmp / "cache", memo=BaselineMemo())
    watcher = Watcher.create(root)
    assert watcher is not None, "inotify is not available here"
    hinted = HintedSync(inner, watcher, session.name)
    hinted.up()
    hinted.up()
    hinted_s, full_s = [], []
    for _ in range(RUNS_SYNC):
        start = time.perf_counter()
        assert hinted.up().exec_skipped
        hinted_s.append(time.perf_counter() - start)
    plain = WorkspaceSync(root, session, tmp / "cache")
    for _ in range(10):
        start = time.perf_counter()
        assert plain.up().exec_skipped
        full_s.append(time.perf_counter() - start)
    watcher.close()
    return hinted_s, full_s


@contextlib.contextmanager
def backend_env(name: str) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ["MODAL_OFFLOAD_BACKEND"] = name
    if name != "modal":
        yield
        return
    from testing.modal_emulator import EmulatorThread

    with EmulatorThread() as emu:
        os.environ.update({k: v for k, v in emu.env().items() if k != "HOME"})
        os.environ["MODAL_APP_NAME"] = f"bench-host-{os.getpid()}"
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def stop_host(home: Path) -> None:
    for pidfile in (home / ".run" / "modal-offload").glob("host-*.json"):
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(json.loads(pidfile.read_text())["pid"]), signal.SIGTERM)
    time.sleep(0.3)


def bench_exec(tmp: Path, name: str) -> None:
    ws = make_tree(tmp / f"ws-{name}", 20)
    with backend_env(name):
        try:
            cli_times(ws, True, 3)  # start the host, open the session
            host = cli_times(ws, True, RUNS_HOST)
            warm = warm_gateway_times(ws, RUNS_WARM)
            inproc = cli_times(ws, False, RUNS_INPROC)
            rss = client_rss_kb(ws)
        finally:
            stop_host(Path(os.environ["HOME"]))
    over50, over99 = p50(host) - p50(warm), p99(host) - p50(warm)
    report(f"exec_true_host_{name}",
           f"p50 {p50(host) * 1000:.1f} ms, p99 {p99(host) * 1000:.1f} ms; warm gateway alone "
           f"p50 {p50(warm) * 1000:.1f} ms; added client overhead p50 {over50 * 1000:.1f} ms "
           f"(target <= 50), p99 {over99 * 1000:.1f} ms (target <= 100)")
    report(f"exec_true_inprocess_{name}",
           f"p50 {p50(inproc) * 1000:.0f} ms, p99 {p99(inproc) * 1000:.0f} ms "
           f"(MODAL_OFFLOAD_HOST=0); host is {p50(inproc) / p50(host):.1f}x faster")
    report(f"thin_client_rss_{name}", f"{rss / 1024:.1f} MB (target <= 25 MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("local", "modal", "both"), default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mo-bench-host-") as raw:
        tmp = Path(raw)
        isolate(tmp)
        hinted, full = sync_times(tmp)
        report("sync_up_nochange_10k_watched",
               f"p50 {p50(hinted) * 1000:.2f} ms, p99 {p99(hinted) * 1000:.2f} ms "
               f"(target <= 5 ms); full scan p50 {p50(full) * 1000:.1f} ms, "
               f"{p50(full) / p50(hinted):.0f}x")
        for name in (("local", "modal") if args.backend == "both" else (args.backend,)):
            try:
                bench_exec(tmp, name)
            except (SystemExit, Exception) as exc:  # one backend failing keeps the other
                report(f"exec_true_host_{name}", f"not measured: {exc}"[:300])


if __name__ == "__main__":
    main()
