"""The checks `modal-offload doctor` runs: each a small function returning one Row.

To add a row, write `def check_x(ctx: Context) -> Row` and append it to CHECKS (or call
`register`). A check that raises becomes a `fail` row naming the exception, so one broken
check never hides the others. Checks run in parallel threads; each must stay well under
the doctor's 5 s budget (subprocess probes use PROBE_TIMEOUT).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from . import __version__, config, credentials, paths, workspace
from .config import Settings
from .errors import CorruptLedger, OffloadError
from .install.blocks import Status
from .installation import fix as install_fix
from .workspace import Workspace

PROBE_TIMEOUT = 4.0
OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Row:
    check: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Context:
    workspace: Workspace | None
    settings: Settings


Check = Callable[[Context], Row]


def check_version(ctx: Context) -> Row:
    return Row("version", OK, f"modal-offload {__version__} (python {sys.version.split()[0]}, "
               f"{sys.executable})")


def check_credentials(ctx: Context) -> Row:
    reason = credentials.missing_reason()
    if reason is None:
        return Row("modal credentials", OK, "found")
    what, _, fix = reason.partition(": ")
    return Row("modal credentials", WARN, what + "; auto mode runs locally", fix)


def check_backend(ctx: Context) -> Row:
    from .backends._base import SessionSpec, get_backend

    name = ctx.settings.backend
    backend = get_backend(name)
    reason = backend.unavailable_reason()
    if reason:
        what, _, fix = reason.partition(": ")
        local = "MODAL_OFFLOAD_BACKEND=local"
        return Row(f"backend {name}", WARN, what, f"{fix}, or {local}" if fix else local)
    if name != "local" or ctx.workspace is None:
        # Contacting Modal would take seconds and may start a sandbox: credentials suffice here.
        return Row(f"backend {name}", OK, "available (not contacted)")
    spec = SessionSpec(name=f"mo-doctor-{ctx.workspace.id}", workspace=ctx.workspace.root,
                       timeout_seconds=60, idle_timeout_seconds=60)
    session = backend.open_session(spec)
    session.terminate()
    return Row(f"backend {name}", OK, "opened and closed a session")


def check_ledger(ctx: Context) -> Row:
    from .budget import Ledger

    ledger = Ledger()
    try:
        snap = ledger.snapshot()
    except CorruptLedger as exc:
        return Row("ledger", FAIL, exc.message, "modal-offload usage reset (keeps it aside)")
    budget = ctx.settings.max_min_per_day
    left = snap.remaining(budget)
    detail = f"{snap.used_min:.1f} of {budget:g} min used today, {left:.1f} left ({ledger.path})"
    if left <= 0:
        return Row("ledger", WARN, detail, "wait for tomorrow or raise "
                   "PRIMARY_MODAL_MAX_MIN_PER_DAY")
    return Row("ledger", OK, detail)


def check_shims(ctx: Context) -> Row:
    from .install import shims

    if ctx.workspace is None:
        return Row("shims", WARN, "not inside a workspace", "cd into your project")
    fresh = shims.freshness(ctx.workspace.root, ctx.settings)
    folder = paths.shims_dir(ctx.workspace.root)
    if fresh.status is Status.MISSING:
        return Row("shims", FAIL, f"not installed in {folder}", install_fix("shims"))
    if fresh.status is not Status.OK:
        parts = [f"{len(v)} {k}" for k, v in (("new on PATH", fresh.missing),
                 ("vanished", fresh.stale), ("outdated", fresh.outdated)) if v]
        return Row("shims", WARN, ", ".join(parts), "modal-offload shims refresh")
    return Row("shims", OK, f"{len(shims.installed(ctx.workspace.root))} in {folder}")


def check_shim_trust(ctx: Context) -> Row:
    """Shim folders shells would ignore here (not installed by this user, or changed since),
    and recorded folders whose content changed (issue 13)."""
    from .install import trust

    bad = trust.untrusted_around(Path(os.getcwd()).resolve())
    seen = {f.folder for f in bad}
    bad += [f for f in trust.altered() if f.folder not in seen]
    if bad:
        return Row("shim trust", FAIL, "ignored by shells: " + "; ".join(
            f"{f.folder} ({f.reason})" for f in bad),
            "if a folder is yours: modal-offload shims install there; otherwise delete it")
    return Row("shim trust", OK, f"{len(trust.read())} folder(s) installed by you; "
               "no others in the way")


def check_rc_blocks(ctx: Context) -> Row:
    from .install import completion, shell_bootstrap

    items = [*shell_bootstrap.check(), *completion.check()]
    bad = [f"{i.path.name} {i.status.value}" for i in items if i.status is not Status.OK]
    if bad:
        return Row("shell bootstrap", FAIL, ", ".join(bad), install_fix("shell-bootstrap"))
    return Row("shell bootstrap", OK, f"{len(items)} files in place")


def _probe(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # A clean start, as a new terminal would give: our own markers from this process removed.
    env = {k: v for k, v in os.environ.items()
           if k not in {"MODAL_SHIMS_ACTIVE", "MODAL_OFFLOAD_SHIMS_DIR",
                        "MODAL_OFFLOAD_SAVED_PATH", "MODAL_OFFLOAD_BYPASS"}}
    from .local_run import path_without_shims

    env["PATH"] = path_without_shims(env.get("PATH", ""))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)


def _routing_row(shell: str, ctx: Context, script: str, argv_prefix: list[str]) -> Row:
    label = f"routing in {shell}"
    if ctx.workspace is None:
        return Row(label, WARN, "not inside a workspace", "cd into your project")
    if shutil.which(shell) is None:
        return Row(label, WARN, f"{shell} is not installed", "")
    # The real probe runs through the gateway only on the local backend: on Modal it would
    # take seconds and spend budget; there, resolving into the shims is the evidence.
    remote = ctx.settings.backend == "local"
    body = script + ('; echo "remote=$(printenv MODAL_OFFLOAD_REMOTE)"' if remote else "")
    try:
        out = _probe([*argv_prefix, body], ctx.workspace.root)
    except subprocess.TimeoutExpired:
        return Row(label, FAIL, f"probe took over {PROBE_TIMEOUT:g}s", "check your rc files")
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    shims = str(paths.shims_dir(ctx.workspace.root))
    problems = []
    if not lines.get("printenv", "").startswith(shims):
        problems.append(f"printenv resolves to {lines.get('printenv') or 'nothing'}")
    if lines.get("git", "").startswith(shims):
        problems.append("git is shimmed")
    if shell == "zsh" and "function" not in lines.get("abs", ""):
        problems.append("/bin/hostname is not wrapped")
    if remote and lines.get("remote") != "1":
        problems.append("printenv did not run remotely")
    fix = (f"{install_fix('shims')} && {install_fix('shell-bootstrap')}, "
           "then open a new terminal")
    if problems:
        return Row(label, FAIL, "; ".join(problems), fix)
    return Row(label, OK, "routed probe ran remotely, git local" if remote
               else "commands resolve into the shims, git local")


def check_bash(ctx: Context) -> Row:
    # Login bash reads ~/.profile (our block exports BASH_ENV); the inner `bash -c` then
    # proves non-interactive shells route through BASH_ENV alone.
    inner = 'echo "printenv=$(command -v printenv)"; echo "git=$(command -v git)"'
    # The inner shell starts from the PATH before activation, so only BASH_ENV can route it.
    return _routing_row("bash", ctx, f"PATH=${{MODAL_OFFLOAD_SAVED_PATH:-$PATH}} bash -c '{inner}'",
                        ["bash", "-lc"])


def check_zsh(ctx: Context) -> Row:
    script = ('echo "printenv=$(whence -p printenv)"; echo "git=$(whence -p git)"; '
              'echo "abs=$(whence -w /bin/hostname)"')
    return _routing_row("zsh", ctx, script, ["zsh", "-c"])


def check_agent_runner(ctx: Context) -> Row:
    runner = paths.agent_runner_path()
    if runner.is_file() and os.access(runner, os.X_OK):
        return Row("agent runner", OK, str(runner))
    return Row("agent runner", WARN, f"{runner} is missing", install_fix("agent-runner"))


def check_host(ctx: Context) -> Row:
    from .host.health import host_check

    status, detail, fix = host_check(ctx.settings.use_host)
    return Row("session host", status, detail, fix)


def check_image(ctx: Context) -> Row:
    """The workspace's remote image (issue 12), from what the last session listed: no
    network, no build (`modal-offload env check` does both)."""
    from .image import cache, programs, tools

    if ctx.workspace is None:
        return Row("remote image", WARN, "not inside a workspace", "cd into your project")
    image = cache.current(ctx.workspace.root, ctx.settings)
    what = f"{image.hash} (python {image.python}, {len(image.steps)} step(s))"
    names = programs.known(ctx.settings.backend, image.hash)
    if names is None:
        return Row("remote image", OK, f"{what}; not built yet",
                   "`modal-offload env check` builds and checks it")
    required = tools.required_programs(image, ctx.workspace.root, ctx.settings)
    missing = [n for n in required if n not in names]
    if missing:
        return Row("remote image", WARN, f"{what}; missing remotely: {', '.join(missing)}",
                   f'[image] apt = ["{missing[0]}"] (or pip) in .modal-offload.toml')
    return Row("remote image", OK, f"{what}; {len(names)} programs, "
               f"has {', '.join(required)}")


CHECKS: list[Check] = [check_version, check_credentials, check_backend, check_ledger,
                       check_shims, check_shim_trust, check_rc_blocks, check_bash, check_zsh,
                       check_agent_runner, check_host, check_image]


def register(check: Check) -> Check:
    CHECKS.append(check)
    return check


def _safe(check: Check, ctx: Context) -> Row:
    try:
        return check(ctx)
    except OffloadError as exc:
        return Row(check.__name__.removeprefix("check_"), FAIL, exc.one_line())
    except Exception as exc:  # one broken check must not hide the others
        return Row(check.__name__.removeprefix("check_"), FAIL,
                   f"{exc.__class__.__name__}: {exc}")


def context() -> Context:
    ws = workspace.find()
    return Context(ws, config.load(ws.root if ws else None))


def run_all(ctx: Context, checks: list[Check] | None = None) -> list[Row]:
    todo = CHECKS if checks is None else checks
    with ThreadPoolExecutor(max_workers=len(todo) or 1) as pool:
        return list(pool.map(lambda c: _safe(c, ctx), todo))
