"""The real agent CLIs, at pinned versions, installed from npm into a cache folder.

    python -m testing.agent_clis install     # what .ci/run does before the real-CLI tier

The folder is `$AGENT_CLIS_CACHE` (not a MODAL_* name: the test fixture scrubs those), else
`<repo>/.cache/agent-clis` (ignored by git); each tool gets its own npm prefix
`<name>-<version>`, so a pin change installs anew.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# name: (npm package, exact version, bin name)
PINS: dict[str, tuple[str, str, str]] = {
    "claude": ("@anthropic-ai/claude-code", "2.1.332", "claude"),
    "claude-2.1.197": ("@anthropic-ai/claude-code", "2.1.197", "claude"),
    "gemini": ("@google/gemini-cli", "0.61.0", "gemini"),
    "codex": ("@openai/codex", "0.171.0", "codex"),
    "cline": ("cline", "3.0.65", "cline"),
}


def cache_dir() -> Path:
    env = os.environ.get("AGENT_CLIS_CACHE")
    return Path(env) if env else REPO / ".cache" / "agent-clis"


def binary(name: str) -> Path:
    _package, version, bin_name = PINS[name]
    folder = name if name.endswith(version) else f"{name}-{version}"
    return cache_dir() / folder / "node_modules" / ".bin" / bin_name


def install(name: str) -> tuple[Path | None, str]:
    """(the tool's binary, "") or (None, why it cannot run here)."""
    path = binary(name)
    if path.exists():
        return path, ""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None, "node/npm not installed"
    package, version, _ = PINS[name]
    prefix = path.parent.parent.parent
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                           "--loglevel=error", f"{package}@{version}"],
                          capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0 or not path.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"npm install {package}@{version} failed: {tail[0]}"
    return path, ""


def main() -> int:
    if sys.argv[1:] != ["install"]:
        print("usage: python -m testing.agent_clis install", file=sys.stderr)
        return 2
    for name in PINS:
        path, why = install(name)
        print(f"{name}: {path}" if path else f"{name}: unverified ({why})")
    return 0  # a tool that cannot install is reported by the tests as unverified


if __name__ == "__main__":
    raise SystemExit(main())
