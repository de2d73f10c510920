"""Every option and subcommand explains itself; `--help` lists the exit codes from their one
definition (errors.EXIT_CODES), and the README's list agrees."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

from modal_offload import errors
from modal_offload.cli import build_parser
from tests.helpers import REPO, cli


def _walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action,
                                                                         str | None]]:
    """(where, action, help) for every argument and every subcommand, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", action, helps.get(name)
                yield from _walk(sub, f"{path} {name}")
        else:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", action, action.help


def test_every_option_and_subcommand_has_help() -> None:
    items = list(_walk(build_parser(), "modal-offload"))
    assert len(items) > 60  # the walk reaches the nested actions
    missing = [where for where, _, text in items if not (text and text.strip())
               or text == argparse.SUPPRESS]
    assert not missing, f"no help text: {missing}"


def test_help_lists_every_exit_code_from_one_table() -> None:
    out = cli("--help")
    assert out.returncode == 0
    text = out.stdout.decode()
    table = text[text.index("exit codes:"):]
    for code, what in errors.EXIT_CODES:
        assert re.search(rf"^  {code}\s+{re.escape(what)}$", table, re.M), (code, table)
    # Every exit code our errors carry is in the table.
    classes = [errors.BadInput, errors.BudgetExhausted, errors.BackendUnavailable,
               errors.BackendError, errors.CorruptLedger, errors.SyncError, errors.OffloadError]
    assert {c.exit_code for c in classes} <= {code for code, _ in errors.EXIT_CODES}


def test_readme_lists_the_same_exit_codes() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Exit codes"):]
    section = section[:section.index("\n#")]
    listed = {int(n) for n in re.findall(r"`(\d+)`", section)}
    assert listed == {code for code, _ in errors.EXIT_CODES}


def test_bad_arguments_are_one_line_exit_2() -> None:
    out = cli("heavy", "--mode", "turbo")
    assert out.returncode == errors.BAD_INPUT_EXIT
    assert out.stderr.count(b"\n") == 1 and b"invalid choice: 'turbo'" in out.stderr
    assert b"modal-offload heavy --help" in out.stderr
