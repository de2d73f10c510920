"""Shim overhead: what routing adds to a local-only command and to a routed one.

1. `git --version` (local-only: no shim) with the shims dir first on PATH vs without it;
   target: <= 3 ms added.
2. A routed command: what the shim adds before the gateway starts, measured exactly with a
   shim whose gateway is `true` vs calling that gateway directly; target: <= 10 ms added.
   Then, for context, `true` through its real shim vs `modal-offload exec -- true` on the
   local sandbox backend: that p50 rides on ~250 ms of sync and process start, so its
   difference is mostly machine noise, and it is printed without a verdict.
3. A shim stepping aside (MODAL_OFFLOAD_BYPASS=1) vs the real binary; target: <= 3 ms.
4. Shell start: finding and trusting the workspace's shims (issue 13: the registry lookup and
   one `find` over the folder) vs a start with no shims to find; target: <= 15 ms.

Runs in a throwaway HOME and workspace; p50 of RUNS interleaved runs each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import p50, report, timed

from modal_offload.install import trust
from modal_offload.install.shims import render_shim

RUNS = 25
CLI = str(Path(sys.executable).parent / "modal-offload")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MODAL_", "PRIMARY_MODAL_", "XDG_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"),
               MODAL_OFFLOAD_BACKEND="local", MODAL_OFFLOAD_HOST="0",
               MODAL_OFFLOAD_REMOTE_ALWAYS="true")
    return env


def _pair(name: str, base: list[str], routed: list[str], cwd: Path, base_env: dict[str, str],
          routed_env: dict[str, str], target_ms: float | None) -> bool:
    def go(argv: list[str], env: dict[str, str]) -> None:
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)

    go(base, base_env)
    go(routed, routed_env)  # warm caches and the session
    a: list[float] = []
    b: list[float] = []
    for _ in range(RUNS):  # interleaved, so drift hits both sides alike
        a += timed(lambda: go(base, base_env), 1)
        b += timed(lambda: go(routed, routed_env), 1)
    # Median of paired differences: robust to a machine that speeds up or slows down.
    added = p50([y - x for x, y in zip(a, b, strict=True)]) * 1000
    ok = target_ms is None or added <= target_ms
    verdict = ("(context only)" if target_ms is None
               else f"target <= {target_ms:g} ms: {'ok' if ok else 'OVER'}")
    report(name, f"baseline p50 {p50(a) * 1000:.2f} ms, with shims p50 {p50(b) * 1000:.2f} ms, "
                 f"added {added:+.2f} ms (ratio {p50(b) / p50(a):.3f}), {verdict}")
    return ok


def main() -> int:
    if shutil.which("git") is None:
        print("bench_shims: git not found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-shims-") as tmp:
        home, ws = Path(tmp) / "home", Path(tmp) / "ws"
        home.mkdir()
        ws.mkdir()
        (ws / ".modal-offload.toml").write_text("")
        env = _env(home)
        subprocess.run([sys.executable, "-m", "modal_offload", "shims", "install"], cwd=ws,
                       env=env, check=True, stdout=subprocess.DEVNULL)
        shims = ws / ".modal-shims"
        active = dict(env, PATH=f"{shims}{os.pathsep}{env['PATH']}", MODAL_SHIMS_ACTIVE="1")
        real_true = shutil.which("true") or "/bin/true"
        stub = Path(tmp) / "stub" / ".modal-shims"
        stub.mkdir(parents=True)
        (stub / "true").write_text(render_shim("true", [real_true], ws))
        (stub / "true").chmod(0o755)
        results = [
            _pair("local-only git --version", ["git", "--version"], ["git", "--version"], ws,
                  env, active, 3),
            _pair("routed: shim up to the gateway", [real_true, "exec", "--", "true"],
                  [str(stub / "true")], ws, env, env, 10),
            _pair("routed true end to end: shim vs modal-offload exec",
                  [CLI, "exec", "--", "true"], [str(shims / "true")], ws, env, env, None),
            _pair("shim stepping aside (bypass) vs real true", [real_true],
                  [str(shims / "true")], ws, env, dict(env, MODAL_OFFLOAD_BYPASS="1"), 3),
            _pair("shell start: trusted shims found vs none to find",
                  ["sh", "-c", f'. "{trust.TEMPLATE}"; _mo_find_shims /'],
                  ["sh", "-c", f'. "{trust.TEMPLATE}"; _mo_find_shims "$PWD"; '
                   '[ -n "$_mo_found" ]'], ws, env, env, 15),
        ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
