"""`modal-offload env show [--json]` and `env check [--json] [--backend B]` (issue 12).

`show` prints the workspace's image spec, its inputs, its hash and the Modal builder calls it
becomes, without contacting anything. `check` builds or reuses the image (through the
ordinary session, so it is metered like any command), runs the same probe on both sides and
compares: the programs the workspace needs and the shims route, the Python, Node and
declared package versions. Exit 1 when a program the workspace needs is missing remotely.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import config, workspace
from ..backends import _modal_image
from ..backends._base import get_backend
from ..errors import BackendError, BackendUnavailable
from ..gateway import Gateway, Streams, fd_sink, resources
from ..image import cache, identity, programs, tools
from ..image import probe as probe_module
from ..install import shims
from ..local_run import path_without_shims
from ..remote_env import remote_environment
from ..ui import notice

MAX_LISTED = 12


def _spec_view(ws: workspace.Workspace, settings: config.Settings) -> dict[str, Any]:
    image = cache.current(ws.root, settings)
    cpu, memory, gpu = resources(settings, "exec")
    return {"workspace": str(ws.root), "hash": image.hash,
            "session": ws.session_name(cpu, memory, image.hash, gpu),
            "spec": image.as_dict(), "modal": _modal_image.describe(image, ws.root)}


def show(as_json: bool = False) -> int:
    ws = workspace.require()
    settings = config.load(ws.root)
    view = _spec_view(ws, settings)
    if as_json:
        print(json.dumps(view, indent=2))
        return 0
    spec = view["spec"]
    print(f"image {view['hash']} for {view['workspace']}")
    print(f"  session: {view['session']}")
    print(f"  python: {spec['python']} (local {sys.version_info[0]}.{sys.version_info[1]})")
    for step in cache.current(ws.root, settings).steps:
        print(f"  {step.describe()}")
    if spec["pythonpath"]:
        print(f"  remote PYTHONPATH: {', '.join(spec['pythonpath'])} (the workspace's own code)")
    for path, digest in spec["inputs"]:
        print(f"  input {path} sha256:{digest[:16]}")
    for note in spec["notes"]:
        print(f"  note: {note}")
    print("  as Modal builds it:")
    for line in view["modal"]:
        print(f"    {line}")
    return 0


def _request(names: list[str], packages: list[str]) -> dict[str, Any]:
    return {"programs": names, "packages": packages,
            "versions": {n: argv for n, argv in tools.VERSION_ARGV.items() if n in names}}


def _probe_source() -> str:
    return Path(probe_module.__file__).read_text(encoding="utf-8")


# `python -c SRC` puts the working folder (the workspace) first on sys.path, where a
# `json.py` would replace the standard module the probe imports and run on the laptop
# (red team, issue 13). Dropping that one entry keeps everything else the probe is meant to
# see (site-packages, the user site, PYTHONPATH); `-I` would hide them. Python >= 3.4.
PROBE_RUNNER = ("import sys; del sys.path[0]; src = sys.argv.pop(1); "
                "exec(compile(src, 'probe.py', 'exec'), {'__name__': '__main__'})")


def _probe_argv(python: str, request: dict[str, Any]) -> list[str]:
    return [python, "-c", PROBE_RUNNER, _probe_source(), json.dumps(request)]


def _local_probe(request: dict[str, Any]) -> dict[str, Any]:
    path = path_without_shims(os.environ.get("PATH", ""))
    python = shutil.which("python3", path=path) or shutil.which("python", path=path)
    if python is None:
        return probe_module.probe(request)
    done = subprocess.run(_probe_argv(python, request),
                          capture_output=True, timeout=60, check=False,
                          env={**os.environ, "PATH": path})
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        return probe_module.probe(request)
    return result


def _remote_probe(ws: workspace.Workspace, settings: config.Settings,
                  request: dict[str, Any]) -> dict[str, Any]:
    backend = get_backend(settings.backend)
    reason = backend.unavailable_reason()
    if reason:
        raise BackendUnavailable(reason)
    out = io.BytesIO()

    def collect(data: bytes) -> None:
        out.write(data)

    report = Gateway(settings, backend, ws).run(
        _probe_argv("python", request), cwd_rel=".",
        env=remote_environment(os.environ, settings.forward_env),
        streams=Streams(None, collect, fd_sink(2)), sync_back=False,
        progress=sys.stderr.isatty())
    try:
        result: dict[str, Any] = json.loads(out.getvalue())
    except ValueError:
        raise BackendError(f"the remote probe failed (exit {report.exit_code})",
                           "see its error output above") from None
    return result


def _compare(ws: workspace.Workspace, settings: config.Settings) -> dict[str, Any]:
    image = cache.current(ws.root, settings)
    required = tools.required_programs(image, ws.root, settings)
    routed = [n for n in shims.installed(ws.root) if n not in required]
    packages = tools.declared_packages(image, ws.root)
    request = _request(required, packages)
    remote = _remote_probe(ws, settings, request)
    local = _local_probe(request)
    remote_names = programs.known(settings.backend, image.hash) or frozenset()
    rows = []
    for name in required:
        there = bool(remote["programs"].get(name)) or (name == "python")
        rows.append({"name": name, "required": True, "remote": there,
                     "local_version": local["versions"].get(name),
                     "remote_version": remote["versions"].get(name)})
    missing_routed = [n for n in routed if n not in remote_names]
    differ = [{"name": n, "local": local["packages"].get(n), "remote": remote["packages"].get(n)}
              for n in packages if local["packages"].get(n) != remote["packages"].get(n)]
    missing = [r["name"] for r in rows if not r["remote"]]
    return {"image": image.hash, "python": {"local": local["versions"].get("python"),
                                            "remote": remote["versions"].get("python")},
            "programs": rows, "routed_not_in_image": missing_routed,
            "packages_differ": differ, "missing": missing, "ok": not missing,
            "session": (identity.previous(ws.session_family(*resources(settings, "exec")))
                        or {}).get("session")}


def check(as_json: bool = False, backend: str | None = None) -> int:
    ws = workspace.require()
    settings = config.load(ws.root, {"backend": backend} if backend else None)
    result = _compare(ws, settings)
    if as_json:
        print(json.dumps(result, indent=2))
        return 0 if result["ok"] else 1
    py = result["python"]
    print(f"image {result['image']}: python {py['remote']} remotely, {py['local']} here")
    for row in result["programs"]:
        state = "ok" if row["remote"] else "MISSING"
        print(f"  {row['name']:<10} {state:<8} remote {row['remote_version'] or '-':<24} "
              f"local {row['local_version'] or '-'}")
    for pkg in result["packages_differ"]:
        print(f"  package {pkg['name']}: remote {pkg['remote'] or 'not installed'}, "
              f"local {pkg['local'] or 'not installed'}")
    routed = result["routed_not_in_image"]
    if routed:
        more = f" (+{len(routed) - MAX_LISTED} more)" if len(routed) > MAX_LISTED else ""
        print(f"  {len(routed)} routed program(s) are not in the image and run locally: "
              f"{', '.join(routed[:MAX_LISTED])}{more}")
    for name in result["missing"]:
        notice(f"{name} is missing remotely: add `[image] apt = [\"{name}\"]` or `[image] pip` "
               "to .modal-offload.toml, or declare it in the workspace's dependencies")
    return 0 if result["ok"] else 1
