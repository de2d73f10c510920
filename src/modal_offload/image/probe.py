"""What an environment has: programs, their versions, installed distributions.

`env check` runs this same file on both sides (`python -c <this source> <request JSON>`):
locally under the workspace's own `python`, remotely in the session, so the comparison is
of like with like. Standard library only, and nothing from this package, because either
interpreter may lack modal-offload.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

VERSION_TIMEOUT = 10.0


def _version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=VERSION_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return text[0].strip() if text and done.returncode == 0 else None


def _distributions(names: list[str]) -> dict[str, str | None]:
    import importlib.metadata as metadata
    import re

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    installed: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            installed.setdefault(norm(name), dist.version)
    return {n: installed.get(norm(n)) for n in names}


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """request: {"programs": [names], "versions": {name: argv}, "packages": [names]}."""
    programs = {name: shutil.which(name) for name in request.get("programs", [])}
    versions = {name: _version(list(argv)) if programs.get(name) or name == "python" else None
                for name, argv in request.get("versions", {}).items()}
    versions["python"] = sys.version.split()[0]
    return {"programs": programs, "versions": versions,
            "packages": _distributions(list(request.get("packages", [])))}


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))))
