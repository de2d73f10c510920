"""Argument parsing and dispatch only; each subcommand lives in `commands/`.

Imports of command modules happen after parsing, so `modal-offload exec` on the hot path
loads nothing it does not use (and never `modal`, which only its backend imports).
"""

from __future__ import annotations

import importlib
import os
import sys

from . import __version__
from .errors import BROKEN_PIPE_EXIT, INTERNAL_EXIT, INTERRUPTED_EXIT, OffloadError

# Type-only imports, and argparse/traceback imported where used: `exec` through the session
# host never builds the parser, and typing + argparse + traceback cost ~15 ms on every
# routed command (issue #8).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

    Handler = Callable[[argparse.Namespace], int]


def _call(module: str, func: str, **fixed: Any) -> Handler:
    """Dispatch to commands.<module>.<func>(**typed arguments), importing lazily."""

    def handler(ns: argparse.Namespace) -> int:
        mod = importlib.import_module(f"modal_offload.commands.{module}")
        kwargs = {k: v for k, v in vars(ns).items()
                  if k not in {"handler", "debug", "command", "action"}}
        kwargs.update(fixed)
        result: int = getattr(mod, func)(**kwargs)
        return result

    return handler


def _add_usage(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("usage", help="show, reset or add to today's remote minutes")
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = acts.add_parser("show", help="today's used, budget, remaining and the last 7 days")
    show.add_argument("--json", action="store_true", dest="as_json", help=_JSON_HELP)
    show.set_defaults(handler=_call("usage", "show"))
    reset = acts.add_parser("reset", help="zero today's usage (moves a corrupt ledger aside)")
    reset.set_defaults(handler=_call("usage", "reset"))
    add = acts.add_parser("add", help="record minutes spent on Modal outside this tool")
    add.add_argument("minutes", help="minutes (>= 0)")
    add.add_argument("--note", default=None, help="a note kept with the entry in the ledger")
    add.set_defaults(handler=_call("usage", "add"))
    rec = acts.add_parser("reconcile", help="compare our dollars with Modal's billing report")
    rec.add_argument("--days", type=int, default=7, help="how many days back (default 7)")
    rec.add_argument("--json", action="store_true", dest="as_json", help=_JSON_HELP)
    rec.set_defaults(handler=_call("usage", "reconcile"))


_JSON_HELP = "print JSON instead of text"
_GPU_HELP = ("a GPU for the sandbox, Modal's TYPE[:COUNT] (e.g. H100, A10G:2); default "
             "[resources] gpu or MODAL_OFFLOAD_GPU, else none")


def _add_backend(p: argparse.ArgumentParser) -> None:
    from .exec_args import BACKENDS

    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="where sessions run: modal, or local (a scratch folder on this "
                        "machine); default MODAL_OFFLOAD_BACKEND, else modal")


def _add_heavy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .config import HEAVY_MODES as MODES

    p = sub.add_parser("heavy", help="run do_heavy_stuff(payload) remotely or locally")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--payload", default=None, help="the payload, a JSON object")
    src.add_argument("--payload-file", default=None, metavar="PATH",
                     help="a file holding the payload JSON object")
    src.add_argument("--map", default=None, metavar="JSONL", dest="map_file",
                     help="one payload per line, each in its own sandbox; prints one JSON "
                          "result per line, in order")
    p.add_argument("--parallel", type=int, default=None, metavar="P",
                   help="with --map: at most P sandboxes at once")
    p.add_argument("--mode", default=None, choices=MODES,
                   help="auto (default: remote while budget and credentials allow), "
                        "modal (remote or fail) or local")
    p.add_argument("--no-local-fallback", action="store_false", dest="allow_local_fallback",
                   help="in auto mode, fail (exit 3/4) instead of running locally")
    p.add_argument("--gpu", default=None, metavar="TYPE[:N]", help=_GPU_HELP)
    p.set_defaults(handler=_call("heavy", "run"))


def _add_exec(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """For `exec --help` and completion only: `main` parses exec with `exec_args.parse`,
    whose OPTIONS table this renders, so there is one parser and one list of options."""
    import argparse

    from .exec_args import BACKENDS, OPTIONS

    p = sub.add_parser("exec", help="run a command in the workspace's remote session",
                       usage="%(prog)s [options] (-- CMD [ARGS...] | -c 'SHELL STRING')")
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for flags, dest, const, metavar, help_text in OPTIONS:
        target: argparse._ActionsContainer = p
        if const is not None:
            target = groups.setdefault(dest, p.add_mutually_exclusive_group())
            target.add_argument(*flags, action="store_const", const=const, dest=dest,
                                help=help_text)
        else:
            target.add_argument(*flags, dest=dest, metavar=metavar, help=help_text,
                                choices=BACKENDS if dest == "backend" else None)
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")


def _add_batch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import argparse

    p = sub.add_parser("batch", help="run a command once per task, each in its own sandbox",
                       usage="%(prog)s (--tasks N | --map-over-file F | --map-over-values V "
                             "[V ...]) [options] -- CMD [ARGS...]")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tasks", type=int, default=None, metavar="N",
                     help="N tasks, MODAL_OFFLOAD_TASK_ID 0..N-1")
    src.add_argument("--map-over-file", default=None, metavar="F",
                     help="one task per non-empty line of F (MODAL_OFFLOAD_TASK_INPUT)")
    src.add_argument("--map-over-values", nargs="+", default=None, metavar="V",
                     help="one task per value (MODAL_OFFLOAD_TASK_INPUT)")
    p.add_argument("--parallel", type=int, default=None, metavar="P",
                   help="at most P sandboxes at once (default: all)")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop every task at the first failure")
    p.add_argument("--task-minutes", type=float, default=None, metavar="M",
                   help="budget each sandbox leases (default: an equal share of what is left)")
    p.add_argument("--gpu", default=None, metavar="TYPE[:N]", help=_GPU_HELP)
    _add_backend(p)
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p.set_defaults(handler=_call("batch", "run"))


def _add_session(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("session", help="show or stop the workspace's remote session")
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (("status", "show the session"), ("stop", "terminate the session")):
        a = acts.add_parser(name, help=help_text)
        _add_backend(a)
        if name == "status":
            a.add_argument("--json", action="store_true", dest="as_json", help=_JSON_HELP)
        a.set_defaults(handler=_call("session", name))


def _add_route(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import argparse

    p = sub.add_parser("route", help="where a command would run, and which rule decided")
    p.add_argument("--json", action="store_true", dest="as_json", help=_JSON_HELP)
    p.add_argument("argv", nargs=argparse.REMAINDER, help="the command line, e.g. python3 -c 1")
    p.set_defaults(handler=_call("route", "run"))


def _add_installer(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                   module: str, actions: Sequence[tuple[str, str]], help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, action_help in actions:
        a = acts.add_parser(action, help=action_help)
        a.set_defaults(handler=_call(module, action.replace("-", "_")))


def _add_agents(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agents", help="agent runner, policy mirrors and enforcement hooks")
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, action_help in (
            ("install", "install the runner, the policy mirrors and the hooks"),
            ("check", "one line per item: installed, missing or drifted"),
            ("uninstall", "remove them, restoring every file byte for byte")):
        a = acts.add_parser(action, help=action_help)
        a.add_argument("--user", action="store_true",
                       help="hooks at user level instead of in the workspace")
        a.add_argument("--only", choices=("runner", "policy", "hooks"), default=None,
                       help="only this part (default: all three)")
        if action == "check":
            a.add_argument("--live", action="store_true",
                           help="also run `modal-agent-runner -c 'echo ...'` for real")
        a.set_defaults(handler=_call("agents", action))


def _add_env(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("env", help="the remote image this workspace gets, and a check of it")
    acts = p.add_subparsers(dest="action", required=True)
    show = acts.add_parser("show", help="the image spec, its inputs, hash and Modal calls")
    show.add_argument("--json", action="store_true", dest="as_json", help=_JSON_HELP)
    show.set_defaults(handler=_call("env", "show"))
    check = acts.add_parser("check", help="build or reuse the image and compare it with here")
    check.add_argument("--json", action="store_true", dest="as_json", help=_JSON_HELP)
    check.add_argument("--backend", default=None, help="modal (default) or local")
    check.set_defaults(handler=_call("env", "check"))


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check every part of the setup, with fixes")
    p.add_argument("--json", action="store_true", dest="as_json", help=_JSON_HELP)
    p.set_defaults(handler=_call("doctor", "run"))


def _add_completion(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("completion", help="print the tab-completion script for a shell "
                                          "(shell-bootstrap install sets it up for you)")
    p.add_argument("shell", choices=("bash", "zsh"), help="bash or zsh")
    p.set_defaults(handler=_call("completion", "run"))


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from .errors import BAD_INPUT_EXIT, exit_codes_help

    class Parser(argparse.ArgumentParser):
        """Bad arguments get one line and exit 2, like every other bad input (not argparse's
        usage block, which hides the line that says what is wrong)."""

        def error(self, message: str) -> NoReturn:
            self.exit(BAD_INPUT_EXIT, f"{self.prog}: {message} (see `{self.prog} --help`)\n")

    parser: argparse.ArgumentParser = Parser(
        prog="modal-offload",
        description="Run heavy work and terminal commands remotely under a daily budget.",
        epilog=exit_codes_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"modal-offload {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_usage(sub)
    _add_heavy(sub)
    _add_exec(sub)
    _add_batch(sub)
    _add_session(sub)
    _add_route(sub)
    _add_installer(sub, "shims", "shims", (
        ("install", "write a shim for each routed command on PATH into this workspace"),
        ("refresh", "add shims for new commands on PATH, drop vanished ones"),
        ("uninstall", "remove this workspace's shims"),
        ("list", "the shimmed commands")), "PATH shims that route commands remotely")
    _add_installer(sub, "shell-bootstrap", "bootstrap", (
        ("install", "add our blocks to the shell rc files, with tab completion"),
        ("check", "show each rc file's block: ok, missing or drifted"),
        ("uninstall", "remove our blocks, leaving each file as it was")),
        "guarded blocks in shell rc files (routing, completion)")
    _add_agents(sub)
    _add_installer(sub, "host", "host", (
        ("status", "whether the host runs, its sessions and commands"),
        ("stop", "stop the host (it restarts on the next routed command)"),
        ("serve", "run the host in the foreground (started on demand otherwise)")),
        "the per-user session host")
    _add_env(sub)
    _add_doctor(sub)
    _add_completion(sub)
    return parser


def _exec(args: Sequence[str]) -> int | None:
    """`exec`, parsed by its one parser; None for `exec --help` (argparse renders it)."""
    from .exec_args import UsageError, parse

    try:
        parsed = parse(args)
    except UsageError as exc:
        from .errors import BAD_INPUT_EXIT

        print(f"modal-offload exec: {exc} (see `modal-offload exec --help`)", file=sys.stderr)
        return BAD_INPUT_EXIT
    if parsed is None:
        return None
    # Fast path (issue #8): through the warm session host, before building the argparse
    # tree; None means "not handled there", so run in this process.
    from .host import host_enabled

    if host_enabled(os.environ):
        from .host.client import try_exec

        code = try_exec(parsed)
        if code is not None:
            return code
    from .commands.exec import run

    return run(parsed)


# Young-generation collections happen every this many new container objects. Starting the
# CLI creates ~16k long-lived ones (modules, classes, dataclass methods): at CPython's 700,
# the collector walks them some 40 times for nothing (~3 ms per command, issue 17).
_GC_GEN0_THRESHOLD = 50_000


def program() -> NoReturn:
    """The `modal-offload` program (console script and `python -m modal_offload`): `main`,
    with the cyclic garbage collector set for a process that mostly starts and ends.

    At exit, `gc.freeze()` spares the interpreter's final collection its walk over every
    object (~5 ms): the process is ending, so nothing needs collecting; atexit handlers,
    thread joins and the flush of the standard streams still run as usual."""
    import gc

    gc.set_threshold(_GC_GEN0_THRESHOLD)
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[:1] or os.environ.get("MODAL_OFFLOAD_DEBUG") == "1"
    try:
        rest = args[1:] if args[:1] == ["--debug"] else args
        if rest[:1] == ["exec"]:
            code = _exec(rest[1:])
            if code is not None:
                return code
        ns = build_parser().parse_args(args)
        debug = debug or ns.debug
        handler: Handler = ns.handler
        return handler(ns)
    except OffloadError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"modal-offload: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("modal-offload: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except BrokenPipeError:
        return BROKEN_PIPE_EXIT
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"modal-offload: internal error: {exc.__class__.__name__}: {exc} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return INTERNAL_EXIT
