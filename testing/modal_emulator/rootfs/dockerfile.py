"""The Dockerfile subset the `modal` client sends, parsed the way Docker reads it.

The client sends an image layer as a list of Dockerfile lines (`api_pb2.Image.dockerfile_commands`,
built in modal/_image.py, e.g. `pip_install` at ~1283, `env` at ~3047, `workdir` at ~3077). One
list item may hold several lines, and one instruction may continue over several items with a
trailing backslash (poetry's `RUN cd /tmp/poetry && \\ `, _image.py ~1796), so the items are
joined into Dockerfile text and re-split into instructions here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_CONTINUATION = re.compile(r"\\[ \t]*$")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


class DockerfileError(ValueError):
    """An instruction the emulator cannot apply (one line: the build error the client shows)."""


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, ENV, ...
    rest: str  # everything after the keyword
    text: str  # the whole instruction as written (for logs and layer digests)


def instructions(commands: list[str]) -> list[Instruction]:
    out: list[Instruction] = []
    pending = ""
    for line in "\n".join(commands).split("\n"):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if _CONTINUATION.search(line):
            pending += _CONTINUATION.sub("", line) + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append(Instruction(keyword.upper(), rest.strip(), full))
    if pending.strip():
        keyword, _, rest = pending.strip().partition(" ")
        out.append(Instruction(keyword.upper(), rest.strip(), pending.strip()))
    return out


def _expand(text: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def words(text: str, env: dict[str, str]) -> list[str]:
    """Split like Docker's shell-word lexer: quotes group, `$VAR` expands outside single quotes."""
    result: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in " \t\n":
            if in_word:
                result.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
        elif ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise DockerfileError(f"unterminated quote in {text!r}")
            current.append(text[i + 1 : end])
            i = end + 1
        elif ch == '"':
            j = i + 1
            chunk: list[str] = []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in '"\\$':
                    chunk.append(text[j + 1])
                    j += 2
                else:
                    chunk.append(text[j])
                    j += 1
            if j >= len(text):
                raise DockerfileError(f"unterminated quote in {text!r}")
            current.append(_expand("".join(chunk), env))
            i = j + 1
        elif ch == "$":
            match = _VAR.match(text, i)
            if match:
                current.append(env.get(match.group(1) or match.group(2), ""))
                i = match.end()
            else:
                current.append(ch)
                i += 1
        else:
            current.append(ch)
            i += 1
    if in_word:
        result.append("".join(current))
    return result


def env_pairs(rest: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """`ENV K=V K2="v 2"` or the legacy `ENV K some value`."""
    first = rest.split(None, 1)
    if first and "=" not in first[0]:
        if len(first) < 2:
            raise DockerfileError(f"ENV {rest!r} has no value")
        return [(first[0], " ".join(words(first[1], env)))]
    pairs = []
    for word in words(rest, env):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise DockerfileError(f"ENV {rest!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return pairs


def exec_form(rest: str) -> list[str] | None:
    """The JSON (exec) form `["a", "b"]`, or None for the shell form."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None
