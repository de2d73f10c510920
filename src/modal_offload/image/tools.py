"""What a workspace plainly uses, for `env check` and `doctor`: the programs that must exist
remotely and the Python distributions it declares (their versions are compared)."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from . import depfiles
from .spec import ImageSpec

VERSION_ARGV = {"python": ["python", "--version"], "node": ["node", "--version"],
                "npm": ["npm", "--version"], "pytest": ["pytest", "--version"]}


def declared_packages(image: ImageSpec, root: Path) -> list[str]:
    """Normalized names of the Python distributions the image's steps install."""
    names: list[str] = []
    for step in image.steps:
        if step.kind in ("requirements", "pyproject", "pip"):
            names += depfiles.names(step.args)
        elif step.kind in ("uv_sync", "poetry"):
            try:
                project = depfiles.parse_pyproject((root / step.files[0]).read_text())
            except (OSError, depfiles.DepFileError):
                continue
            deps = list(project.dependencies)
            for extra in step.extras:
                deps += project.optional.get(extra, ())
            for group in step.groups:
                deps += project.groups.get(group, ())
            names += depfiles.names(deps)
        elif step.kind == "conda":
            names += depfiles.names([a[4:] for a in step.args if a.startswith("pip:")])
    return sorted(set(names))


def required_programs(image: ImageSpec, root: Path, settings: Settings) -> list[str]:
    """Programs the workspace's own work needs remotely; a missing one fails `env check`."""
    wanted = ["python"]
    if image.step("node") is not None:
        wanted += ["node", "npm"]
    if "pytest" in declared_packages(image, root):
        wanted.append("pytest")
    wanted += [n for n in settings.remote_always if "/" not in n]
    return list(dict.fromkeys(wanted))
