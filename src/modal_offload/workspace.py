"""Which workspace a command belongs to, and the session names derived from it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import BadInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha256 as _sha256
else:
    try:  # CPython's own sha256: `hashlib` loads OpenSSL first, ~2 ms per command (#17)
        from _sha2 import sha256 as _sha256  # 3.12+
    except ImportError:
        try:
            from _sha256 import sha256 as _sha256  # 3.11 and before
        except ImportError:  # another Python: the same digest through hashlib
            from hashlib import sha256 as _sha256


@dataclass(frozen=True)
class Workspace:
    root: Path  # resolved absolute path

    @property
    def id(self) -> str:
        return _sha256(str(self.root).encode()).hexdigest()[:10]

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9-]+", "-", self.root.name.lower()).strip("-")[:24] or "root"

    def session_name(self, cpu: float, memory_mb: int, image: str = "",
                     gpu: str | None = None, task: str = "") -> str:
        """Stable per workspace, resources and image: heavy and exec share one session when
        their resources agree, never run on a sandbox sized for the other (a GPU is a
        resource: issue 15), and a changed image (issue 12) is a new session. At most 64
        characters, Modal's limit for names (modal/_utils/name_utils.py:26-34): the folder
        slug gives way first."""
        tail = f"-{self.id}-c{cpu:g}-m{memory_mb}".replace(".", "p")
        if gpu:
            tail += "-g" + gpu.lower().replace(":", "x").replace(".", "p")
        if image:
            tail += f"-i{image[:8]}"
        if task:  # a batch task's own sandbox (issue 18), never the shared session
            tail += f"-{task}"
        slug = self.slug[:max(1, 64 - 3 - len(tail))].rstrip("-") or "w"
        return f"mo-{slug}{tail}"

    def session_family(self, cpu: float, memory_mb: int, gpu: str | None = None,
                       task: str = "") -> str:
        """The session name without the image: what one image follows another in."""
        return self.session_name(cpu, memory_mb, gpu=gpu, task=task)

    def relative(self, path: Path) -> str:
        """`path` relative to the root, as a POSIX string ('.' for the root itself)."""
        try:
            rel = path.resolve().relative_to(self.root)
        except ValueError:
            raise BadInput(f"{path} is outside the workspace {self.root}",
                           "cd into the workspace first") from None
        return rel.as_posix() or "."


def find(start: Path | None = None) -> Workspace | None:
    """The nearest folder holding `.modal-offload.toml` or `.git`, walking up.

    No `git` subprocess: this runs on every routed command.
    """
    here = (start or Path(os.getcwd())).resolve()
    for folder in (here, *here.parents):
        if (folder / paths.WORKSPACE_CONFIG_NAME).is_file() or (folder / ".git").exists():
            return Workspace(folder)
    return None


def refuse_unsafe_root(ws: Workspace, allowed: bool) -> None:
    """A workspace whose root is your home folder or `/` would upload all of it (`~/.ssh`,
    `~/.aws`, documents) just because `$HOME` is a dotfiles repository (issue 13): refuse
    unless the user configured it explicitly."""
    if allowed:
        return
    home = paths.home().resolve()
    if ws.root == home or ws.root == Path(ws.root.anchor):
        what = "your home folder" if ws.root == home else "the filesystem root"
        raise BadInput(
            f"refusing to sync {ws.root}: the workspace would be {what}",
            "run inside a project folder (git init or create .modal-offload.toml there), "
            f"or set allow_home_workspace = true in {paths.user_config_file()}")


def require(start: Path | None = None) -> Workspace:
    ws = find(start)
    if ws is None:
        raise BadInput(
            f"{(start or Path.cwd())} is not inside a workspace",
            "run inside a git repository or create a .modal-offload.toml at its root",
        )
    return ws
