"""`exec`'s one argument parser (exec_args.parse), used by the host's fast path and the
in-process path alike; argparse only renders `exec --help` from the same table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modal_offload.exec_args import ExecArgs, UsageError, parse
from tests.helpers import cli


@pytest.mark.parametrize(("args", "expected"), [
    (["--", "ls", "-la"], ExecArgs(command=["ls", "-la"])),
    (["ls", "--sync-back"], ExecArgs(command=["ls", "--sync-back"])),
    (["--no-sync-back", "--backend", "local", "-c", "echo"],
     ExecArgs(backend="local", sync_back=False, shell="echo")),
    (["--backend=modal", "--cmd=x"], ExecArgs(backend="modal", shell="x")),
    (["-cecho hi"], ExecArgs(shell="echo hi")),
    (["-tc", "top"], ExecArgs(shell="top", tty=True)),
    (["-T", "--", "python3"], ExecArgs(command=["python3"], tty=False)),
    (["--tty", "--tty", "vi"], ExecArgs(command=["vi"], tty=True)),
    (["-", "x"], ExecArgs(command=["-", "x"])),
    (["-h"], None), (["--backend", "local", "--help"], None),
])
def test_parse(args: list[str], expected: ExecArgs | None) -> None:
    assert parse(args) == expected


@pytest.mark.parametrize("args", [
    [], ["--backend", "local"], ["-c", "true", "--", "ls"], ["-c"], ["--backend"],
    ["--sync-back", "--no-sync-back", "--", "x"], ["-t", "-T", "--", "x"],
    ["--backend", "nope", "--", "x"], ["--frobnicate", "--", "x"], ["-tx", "--", "y"],
    ["--tty=1", "--", "x"],
])
def test_usage_errors(args: list[str]) -> None:
    with pytest.raises(UsageError):
        parse(args)


_words = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)


@given(backend=st.sampled_from([None, "modal", "local"]),
       sync_back=st.sampled_from([None, True, False]), tty=st.sampled_from([None, True, False]),
       shell=st.one_of(st.none(), _words), command=st.lists(_words, max_size=4),
       separator=st.booleans())
def test_every_spelling_round_trips(backend: str | None, sync_back: bool | None,
                                    tty: bool | None, shell: str | None, command: list[str],
                                    separator: bool) -> None:
    """Options, then `--` (or the first word that is not an option) and the command
    unchanged, whatever its words look like."""
    args: list[str] = []
    if backend is not None:
        args += ["--backend", backend]
    if sync_back is not None:
        args.append("--sync-back" if sync_back else "--no-sync-back")
    if tty is not None:
        args.append("-t" if tty else "-T")
    if shell is not None:
        args += ["-c", shell]
        command = []
    elif not command:
        command = ["true"]
    if command and (separator or command[0].startswith("-")):
        args.append("--")
    args += command
    assert parse(args) == ExecArgs(backend=backend, sync_back=sync_back, shell=shell,
                                   command=command, tty=tty)


def test_cli_errors_are_one_line_and_help_lists_every_option() -> None:
    bad = cli("exec", "-t", "-T", "--", "true")
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1
    assert b"see `modal-offload exec --help`" in bad.stderr
    help_text = cli("exec", "--help").stdout
    for flag in (b"--backend", b"--sync-back", b"--no-sync-back", b"-t, --tty", b"-T, --no-tty",
                 b"-c STRING, --cmd STRING"):
        assert flag in help_text, flag


def test_gpu_is_one_of_execs_options() -> None:
    parsed = parse(["--gpu", "h100:2", "-c", "nvidia-smi"])
    assert parsed is not None and parsed.gpu == "h100:2" and parsed.shell == "nvidia-smi"
    inline = parse(["--gpu=T4", "--", "true"])
    assert inline is not None and inline.gpu == "T4" and inline.command == ["true"]
