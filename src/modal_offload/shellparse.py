"""A small, conservative parser for the shell commands agents send: which commands would run.

The agent hook must know every command a string runs before it lets that string run on this
machine. `shlex` cannot tell (it knows no operators, `$(...)`, here-documents or `$'...'`), and
the hook imports the standard library only, so this module parses the subset of POSIX/bash
grammar that agents actually write, and raises `Unsupported` for everything else, so the
caller never treats a string it did not fully understand as "local only".

Understood: words with '...', "..." and backslash quoting; `;` `&&` `||` `|` `|&` `&` and
newlines; `(...)` subshells; redirections (`>`, `2>&1`, `&>`, `<`, ...), here-documents
(`<<EOF`, `<<'EOF'`, `<<-EOF`) and here-strings; leading `NAME=value` assignments; comments;
`$NAME`/`${NAME}` (only `$HOME` has a known value); `$(...)`, parsed recursively (its commands
are reported too), in or out of double quotes; `~/` at the start of a word.

Refused (`Unsupported`): `$'...'` and `$"..."`, backticks, `$((...))`, `${...}` other than
`${NAME}`, process substitution `<(...)`/`>(...)`, reserved words in command position (`if`,
`for`, `{`, `[[`, `!`, `function`, ...), an unquoted here-document body that expands anything,
unterminated quotes, substitutions or here-documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field


class Unsupported(ValueError):
    """The string uses shell syntax this parser does not prove; treat it as unknown."""


@dataclass(frozen=True)
class Command:
    """One simple command: its words after assignments (None where not statically known)."""

    words: tuple[str | None, ...]
    text: str  # the source text of the command, for messages and rule matching

    @property
    def name(self) -> str | None:
        return self.words[0] if self.words else None


RESERVED = frozenset({"if", "then", "else", "elif", "fi", "for", "while", "until", "do",
                      "done", "case", "esac", "function", "select", "{", "}", "[[", "]]", "!",
                      "coproc"})
_METACHARS = " \t\n;&|<>()"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_REDIRECT = re.compile(r"(?:\d*|&)(?:<<<|<<-|<<|<>|<&|>&|>>|>\||<|>)")
_SPECIAL_PARAMS = frozenset("@*#?-$!0123456789")


@dataclass
class _Word:
    value: str | None  # None: not statically known
    raw: str


@dataclass
class _State:
    text: str
    environ: Mapping[str, str]
    commands: list[Command] = field(default_factory=list)
    pending_heredocs: list[tuple[str, bool, bool]] = field(default_factory=list)


def parse(command: str, environ: Mapping[str, str] | None = None) -> list[Command]:
    """Every simple command `command` would run, including those inside `$(...)`.

    `environ` gives `$HOME` (and `~`) a value; other parameters are unknown words."""
    state = _State(command, environ or {})
    end = _parse_list(state, 0, closer=None)
    if end != len(command):  # pragma: no cover - _parse_list consumes everything or raises
        raise Unsupported("trailing text")
    return state.commands


def _parse_list(st: _State, i: int, closer: str | None) -> int:
    """Commands separated by operators until `closer` (returned index is past it) or the end.

    `last` tracks what came before, so that what bash rejects (`;` or `|` with no command
    before it, `a |` at the end, `()`) is refused here too."""
    text = st.text
    last = "start"  # "start" | "command" | "op" (needs a command next) | "sep" (after ; or &)
    seen = False  # any command in this list yet
    while True:
        i = _skip_blanks(text, i)
        if i >= len(text):
            if closer is not None:
                raise Unsupported(f"missing {closer!r}")
            if st.pending_heredocs:
                raise Unsupported("unterminated here-document")
            if last == "op":
                raise Unsupported("operator without a command after it")
            return i
        c = text[i]
        if c == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if c == "\n":
            i = _read_heredocs(st, i + 1)
            last = "op" if last == "op" else "start"
            continue
        if text.startswith(";;", i):
            raise Unsupported("';;' outside case")
        if c in ";&|":
            if last != "command":
                raise Unsupported(f"{c!r} without a command before it")
            op_len = 2 if text.startswith(("&&", "||", "|&"), i) else 1
            last = "sep" if op_len == 1 and c in ";&" else "op"
            i += op_len
            continue
        if c == ")":
            if closer != ")" or last == "op" or not seen:
                raise Unsupported("unbalanced or empty '( )'")
            return i + 1
        if last == "command":
            raise Unsupported("a command directly after another")
        i = _parse_list(st, i + 1, closer=")") if c == "(" else _parse_command(st, i)
        last, seen = "command", True


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text):
        if text[i] in " \t":
            i += 1
        elif text.startswith("\\\n", i):  # line continuation
            i += 2
        else:
            break
    return i


def _parse_command(st: _State, start: int) -> int:
    text = st.text
    i = start
    words: list[str | None] = []
    in_assignments = True
    while True:
        i = _skip_blanks(text, i)
        match = _REDIRECT.match(text, i)
        if match and match.group().startswith("&") and not match.group().startswith("&>"):
            match = None
        if match:
            op = match.group().lstrip("0123456789&")
            i = match.end()
            if text.startswith("(", i) and op in ("<", ">"):
                raise Unsupported("process substitution")
            i = _skip_blanks(text, i)
            if op in ("<<", "<<-"):
                i = _heredoc_operator(st, i, strip_tabs=op == "<<-")
                continue
            if i >= len(text) or text[i] in _METACHARS or text[i] == "#":
                raise Unsupported("redirection without a target")
            _, i = _parse_word(st, i)
            continue
        if i >= len(text) or text[i] in ";&|\n)":
            break
        if text[i] == "(":
            raise Unsupported("'(' inside a command")
        if text[i] == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        word, i = _parse_word(st, i)
        if in_assignments and _ASSIGNMENT.match(word.raw):
            continue
        if in_assignments and not words and word.raw.replace("\\\n", "") in RESERVED:
            raise Unsupported(f"shell keyword {word.raw!r}")
        if text.startswith("(", i) and not words:
            raise Unsupported("function definition")
        in_assignments = False
        words.append(word.value)
    if words or i > start:
        st.commands.append(Command(tuple(words), text[start:i].strip()))
    return i


def _heredoc_operator(st: _State, i: int, strip_tabs: bool) -> int:
    if i >= len(st.text) or st.text[i] in _METACHARS or st.text[i] == "#":
        raise Unsupported("here-document without a delimiter")
    word, end = _parse_word(st, i)
    raw = word.raw
    if word.value is None or not raw:
        raise Unsupported("here-document delimiter is not a plain word")
    quoted = any(q in raw for q in "'\"\\")
    st.pending_heredocs.append((word.value, quoted, strip_tabs))
    return end


def _read_heredocs(st: _State, i: int) -> int:
    """Consume the bodies of here-documents opened on the line that just ended."""
    text = st.text
    for delimiter, quoted, strip_tabs in st.pending_heredocs:
        while True:
            if i >= len(text):
                raise Unsupported("unterminated here-document")
            end = text.find("\n", i)
            line = text[i:] if end < 0 else text[i:end]
            i = len(text) if end < 0 else end + 1
            check = line.lstrip("\t") if strip_tabs else line
            if check == delimiter:
                break
            if not quoted and any(c in line for c in "$`\\"):
                raise Unsupported("here-document body with expansions")
    st.pending_heredocs = []
    return i


def _parse_word(st: _State, i: int) -> tuple[_Word, int]:
    text = st.text
    start = i
    parts: list[str] = []
    known = True
    if text.startswith("~", i):
        j = i + 1
        if j >= len(text) or text[j] == "/" or text[j] in _METACHARS:
            home = st.environ.get("HOME")
            if home is None:
                known = False
            else:
                parts.append(home)
            i = j
        else:
            raise Unsupported("~user expansion")
    while i < len(text) and text[i] not in _METACHARS:
        c = text[i]
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise Unsupported("unterminated single quote")
            parts.append(text[i + 1:end])
            i = end + 1
        elif c == '"':
            value, i = _double_quoted(st, i + 1)
            if value is None:
                known = False
            else:
                parts.append(value)
        elif c == "\\":
            if i + 1 >= len(text):
                raise Unsupported("trailing backslash")
            if text[i + 1] != "\n":
                parts.append(text[i + 1])
            i += 2
        elif c == "`":
            raise Unsupported("backtick substitution")
        elif c == "$":
            value, i = _dollar(st, i, quoted=False)
            if value is None:
                known = False
            else:
                parts.append(value)
        else:
            if c in "*?[{":
                known = False  # a glob or brace expansion: the word's value is not this text
            parts.append(c)
            i += 1
    if i == start:
        raise Unsupported(f"unexpected {text[i]!r}")
    return _Word("".join(parts) if known else None, text[start:i]), i


def _double_quoted(st: _State, i: int) -> tuple[str | None, int]:
    text = st.text
    parts: list[str] = []
    known = True
    while True:
        if i >= len(text):
            raise Unsupported("unterminated double quote")
        c = text[i]
        if c == '"':
            return ("".join(parts) if known else None), i + 1
        if c == "\\":
            if i + 1 >= len(text):
                raise Unsupported("unterminated double quote")
            nxt = text[i + 1]
            if nxt == "\n":
                pass
            elif nxt in '$`"\\':
                parts.append(nxt)
            else:
                parts.append("\\" + nxt)
            i += 2
        elif c == "`":
            raise Unsupported("backtick substitution")
        elif c == "$":
            value, i = _dollar(st, i, quoted=True)
            if value is None:
                known = False
            else:
                parts.append(value)
        else:
            parts.append(c)
            i += 1


def _dollar(st: _State, i: int, quoted: bool) -> tuple[str | None, int]:
    """`$...` at i: (its value, or None when unknown; the index after it)."""
    text = st.text
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if nxt == "(":
        if text.startswith("((", i + 1):
            raise Unsupported("arithmetic expansion")
        return None, _parse_list(st, i + 2, closer=")")
    if nxt in ("'", '"') and not quoted:
        raise Unsupported(f"${nxt}...{nxt} quoting")
    if nxt == "{":
        end = text.find("}", i + 2)
        name = text[i + 2:end] if end >= 0 else ""
        if not _NAME.fullmatch(name):
            raise Unsupported("parameter expansion other than ${NAME}")
        return _param(st, name), end + 1
    match = _NAME.match(text, i + 1)
    if match:
        return _param(st, match.group()), match.end()
    if nxt and nxt in _SPECIAL_PARAMS:
        return None, i + 2
    return "$", i + 1  # a lone `$` is literal


def _param(st: _State, name: str) -> str | None:
    return st.environ.get("HOME") if name == "HOME" else None
