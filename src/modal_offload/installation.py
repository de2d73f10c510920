"""How this copy of modal-offload was installed, and so which command fixes an install step.

A hint such as "run `make setup`" only helps inside our repository; a pipx or `uv tool`
user needs another command, and a plain venv a third. `fix(step)` is the one place every
hint that names an install or setup step gets its command from (issue 20). The kind is
detected from `sys.prefix`, never guessed:

- pipx: every pipx venv holds `pipx_metadata.json` (pipx/pipx_metadata_file.py,
  PIPX_INFO_FILENAME); the venv folder's name is what `pipx inject` expects.
- uv tool: every tool venv holds `uv-receipt.toml` (uv's crates/uv-tool/src/tool.rs writes
  it); the folder's name is the tool's name for `uv tool upgrade`.
- our repository: the venv's parent holds our Makefile (a `setup:` target) and a
  pyproject.toml naming modal-offload: `make setup` / `make auth` are the fixes there.
- anything else: a plain venv (or a user/system install), fixed with its own pip.
"""

from __future__ import annotations

import enum
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DIST = "modal-offload"
# The Makefile door and the CLI words for each of our own setup steps.
Step = Literal["dependencies", "auth", "shims", "shell-bootstrap", "agent-runner"]
_OWN_STEPS: dict[str, tuple[str, str]] = {
    "shims": ("shims-install", "shims install"),
    "shell-bootstrap": ("shell-bootstrap", "shell-bootstrap install"),
    "agent-runner": ("agent-runner-install", "agents install --only runner"),
}


class Kind(enum.Enum):
    REPO = "repository venv"
    PIPX = "pipx"
    UV_TOOL = "uv tool"
    PIP = "pip"


@dataclass(frozen=True)
class Installation:
    kind: Kind
    prefix: Path  # the environment's root (sys.prefix)
    repo: Path | None = None  # our repository, for Kind.REPO


def _is_our_repo(folder: Path) -> bool:
    try:
        makefile = (folder / "Makefile").read_text(encoding="utf-8")
        pyproject = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return (re.search(r"^setup:", makefile, re.M) is not None
            and re.search(rf'^name = "{DIST}"', pyproject, re.M) is not None)


def detect(prefix: str | None = None) -> Installation:
    root = Path(prefix or sys.prefix)
    if (root / "pipx_metadata.json").is_file():
        return Installation(Kind.PIPX, root)
    if (root / "uv-receipt.toml").is_file():
        return Installation(Kind.UV_TOOL, root)
    if _is_our_repo(root.parent):
        return Installation(Kind.REPO, root, root.parent)
    return Installation(Kind.PIP, root)


def _modal_requirement() -> str:
    """Our own pin of the Modal client, as pyproject.toml states it (installed metadata)."""
    from importlib import metadata

    try:
        for req in metadata.requires(DIST) or []:
            name = re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]
            if name.lower() == "modal" and "extra ==" not in req:
                return req.split(";")[0].replace(" ", "").replace("(", "").replace(")", "")
    except metadata.PackageNotFoundError:
        pass
    return "modal"


def _inside(folder: Path) -> bool:
    try:
        Path.cwd().resolve().relative_to(folder.resolve())
    except (OSError, ValueError):
        return False
    return True


def _make(inst: Installation, target: str) -> str:
    assert inst.repo is not None
    return f"make {target}" if _inside(inst.repo) else \
        f"make -C {shlex.quote(str(inst.repo))} {target}"


def _script(inst: Installation, name: str) -> str | None:
    """How to call one of the environment's scripts: bare when PATH finds this very one."""
    path = inst.prefix / "bin" / name
    if not path.is_file():
        return None
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(path):
        return name
    return shlex.quote(str(path))


def _python(inst: Installation) -> str:
    return shlex.quote(str(inst.prefix / "bin" / "python")) \
        if (inst.prefix / "bin" / "python").exists() else shlex.quote(sys.executable)


def fix(step: Step, inst: Installation | None = None) -> str:
    """The command that performs `step` for this installation, ready to paste."""
    inst = inst or detect()
    if step == "dependencies":
        # The Modal client (or another dependency) is missing from our environment.
        req = shlex.quote(_modal_requirement())
        if inst.kind is Kind.REPO:
            return _make(inst, "setup")
        if inst.kind is Kind.PIPX:
            return f"pipx inject {shlex.quote(inst.prefix.name)} {req}"
        if inst.kind is Kind.UV_TOOL:
            return f"uv tool upgrade --reinstall {shlex.quote(inst.prefix.name)}"
        return f"{_python(inst)} -m pip install {req}"
    if step == "auth":
        if inst.kind is Kind.REPO:
            return _make(inst, "auth")
        # pipx and uv put only our own command on PATH, not the Modal client's `modal`.
        modal = _script(inst, "modal") or f"{_python(inst)} -m modal"
        return f"{modal} setup"
    door, words = _OWN_STEPS[step]
    if inst.kind is Kind.REPO and _inside(inst.repo or inst.prefix):
        return f"make {door}"
    return f"{_script(inst, 'modal-offload') or 'modal-offload'} {words}"
