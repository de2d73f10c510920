"""The one parser of `exec`'s arguments (issue 16 merged the thin client's and argparse's).

`cli.main` parses `exec` here, before anything else loads, for both the session host's
fast path and the in-process path; argparse only renders `exec --help` and the completion
scripts, from the same OPTIONS table. Standard library only, and nothing that costs an
import: this runs on every routed command.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms on the thin client's path (host/protocol.py)
if TYPE_CHECKING:
    from collections.abc import Sequence

BACKENDS = ("modal", "local")  # config.py validates MODAL_OFFLOAD_BACKEND against these

# (flags, dest, constant or None for "takes a value", metavar, help)
OPTIONS: tuple[tuple[tuple[str, ...], str, object, str, str], ...] = (
    (("--backend",), "backend", None, "NAME",
     "where sessions run: modal, or local (a scratch folder on this machine); "
     "default MODAL_OFFLOAD_BACKEND, else modal"),
    (("--sync-back",), "sync_back", True, "",
     "copy the remote's changes back here (the default; MODAL_SYNC_BACK)"),
    (("--no-sync-back",), "sync_back", False, "", "leave the local tree untouched"),
    (("-t", "--tty"), "tty", True, "",
     "run under a remote terminal even when stdin/stdout are not terminals"),
    (("-T", "--no-tty"), "tty", False, "",
     "never a remote terminal (default: one when stdin and stdout are both terminals)"),
    (("-c", "--cmd"), "shell", None, "STRING", "a shell command string"),
    (("--gpu",), "gpu", None, "TYPE[:N]",
     "a GPU for the sandbox, Modal's TYPE[:COUNT] (e.g. H100, A10G:2); default "
     "[resources] gpu or MODAL_OFFLOAD_GPU, else none"),
)


class UsageError(Exception):
    """Bad `exec` arguments: one line, exit 2."""


class ExecArgs:
    """What `exec` was asked to do. `tty`: True forced, False forbidden, None automatic."""

    __slots__ = ("backend", "command", "gpu", "shell", "sync_back", "tty")

    def __init__(self, backend: str | None = None, sync_back: bool | None = None,
                 shell: str | None = None, command: list[str] | None = None,
                 tty: bool | None = None, gpu: str | None = None) -> None:
        self.backend = backend
        self.sync_back = sync_back
        self.shell = shell
        self.command = command or []
        self.tty = tty
        self.gpu = gpu

    def _key(self) -> tuple[object, ...]:
        return (self.backend, self.sync_back, self.shell, self.command, self.tty, self.gpu)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecArgs) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(repr(self._key()))

    def __repr__(self) -> str:
        return "ExecArgs" + repr(self._key())


_BY_FLAG = {flag: (dest, const) for flags, dest, const, _m, _h in OPTIONS for flag in flags}


def _set(values: dict[str, object], flag: str, dest: str, value: object) -> None:
    if dest in values and values[dest] != value:
        raise UsageError(f"argument {flag}: not allowed with an earlier opposite option")
    values[dest] = value


def parse(args: Sequence[str]) -> ExecArgs | None:
    """`exec`'s arguments, or None for `-h`/`--help` (argparse prints that). Options come
    before the command; the first non-option word (or whatever follows `--`) starts it."""
    values: dict[str, object] = {}
    command: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            command = list(args[i + 1:])
            break
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-") or arg == "-":
            command = list(args[i:])
            break
        if arg.startswith("--"):
            flag, eq, inline = arg.partition("=")
            if flag not in _BY_FLAG:
                raise UsageError(f"unrecognized option {flag}")
            dest, const = _BY_FLAG[flag]
            if const is not None:
                if eq:
                    raise UsageError(f"argument {flag}: takes no value")
                _set(values, flag, dest, const)
            elif eq:
                _set(values, flag, dest, inline)
            elif i + 1 < len(args):
                i += 1
                _set(values, flag, dest, args[i])
            else:
                raise UsageError(f"argument {flag}: expected one argument")
        else:
            # Short options, clustered as getopt does: -tc 'STRING', -cSTRING.
            for pos in range(1, len(arg)):
                flag = "-" + arg[pos]
                if flag not in _BY_FLAG:
                    raise UsageError(f"unrecognized option {flag}")
                dest, const = _BY_FLAG[flag]
                if const is not None:
                    _set(values, flag, dest, const)
                    continue
                rest = arg[pos + 1:]
                if not rest:
                    if i + 1 >= len(args):
                        raise UsageError(f"argument {flag}: expected one argument")
                    i += 1
                    rest = args[i]
                _set(values, flag, dest, rest)
                break
        i += 1
    backend = values.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"argument --backend: invalid choice {backend!r} "
                         f"(choose from {', '.join(BACKENDS)})")
    shell = values.get("shell")
    if shell is not None and command:
        raise UsageError("give either -c 'STRING' or -- CMD ARGS, not both")
    if shell is None and not command:
        raise UsageError("no command given: use `exec -- CMD ARGS` or `exec -c 'STRING'`")
    sync_back = values.get("sync_back")
    tty = values.get("tty")
    return ExecArgs(backend=None if backend is None else str(backend),
                    sync_back=None if sync_back is None else bool(sync_back),
                    shell=None if shell is None else str(shell), command=command,
                    tty=None if tty is None else bool(tty),
                    gpu=None if values.get("gpu") is None else str(values["gpu"]))
