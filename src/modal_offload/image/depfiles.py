"""Parsers for the dependency files a workspace declares: requirements*.txt, pyproject.toml,
environment.yml and package.json. Pure functions over text, so they are property-tested
(tests/image/test_depfiles.py); reading files and hashing them is `inputs.py`'s job.

They parse only what the image needs: which requirement lines reach the remote `pip`, which
groups a pyproject declares, which Python a conda file pins. Anything the remote cannot use
(an editable install of a local path, a local wheel) is dropped *with a note*, never silently.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_COMMENT = re.compile(r"(^|\s)#.*$")
_INCLUDE = re.compile(r"^(-r|--requirement)(\s+|=)(?P<path>.+)$")
_CONSTRAINT = re.compile(r"^(-c|--constraint)(\s+|=)(?P<path>.+)$")
_EDITABLE = re.compile(r"^(-e|--editable)(\s+|=)(?P<target>.+)$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class DepFileError(ValueError):
    """A dependency file that cannot be read as its format; the message names the file."""


@dataclass(frozen=True)
class Requirements:
    lines: tuple[str, ...] = ()  # what the remote pip gets, in order
    dropped: tuple[str, ...] = ()  # lines the remote cannot use, each with the reason
    includes: tuple[str, ...] = ()  # `-r` files followed (relative to the including file)


def _logical_lines(text: str) -> list[str]:
    """pip's rules: a trailing backslash joins lines, then comments go, then blanks."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            out.append(line)
    tail = _COMMENT.sub("", pending).strip()
    if tail:
        out.append(tail)
    return out


def _is_local_path(target: str) -> bool:
    return target.startswith((".", "/", "~", "file:")) or target in (".", "..")


def parse_requirements(text: str, read_include: Callable[[str], str] | None = None,
                       _depth: int = 0) -> Requirements:
    """Parse requirements text; `read_include(path)` returns an included file's text (or
    raises OSError). Includes are inlined, so the remote gets one self-contained file."""
    lines: list[str] = []
    dropped: list[str] = []
    includes: list[str] = []
    for line in _logical_lines(text):
        if m := _INCLUDE.match(line):
            path = m["path"].strip()
            if read_include is None or _depth >= 8:
                dropped.append(f"{line} (nested include not followed)")
                continue
            try:
                inner = parse_requirements(read_include(path), read_include, _depth + 1)
            except OSError as exc:
                raise DepFileError(f"cannot read included requirements file {path} "
                                   f"({exc.__class__.__name__})") from None
            includes += [path, *inner.includes]
            lines += inner.lines
            dropped += inner.dropped
        elif _CONSTRAINT.match(line):
            dropped.append(f"{line} (constraints files are not sent)")
        elif m := _EDITABLE.match(line):
            target = m["target"].strip()
            if _is_local_path(target):
                dropped.append(f"{line} (a local project: the workspace's own code reaches "
                               "the remote by sync)")
            else:
                lines.append(line)
        elif _is_local_path(line):
            dropped.append(f"{line} (a local path does not exist remotely)")
        else:
            lines.append(line)
    return Requirements(tuple(lines), tuple(dropped), tuple(includes))


def render_requirements(req: Requirements) -> str:
    # A line ending in a backslash would join the next one (pip's join_lines tests the raw
    # line, pip/_internal/req/req_file.py:503 in pip 26.3): a trailing space keeps it one
    # line, as the source wrote it ("x\\ ").
    return "".join(f"{line} \n" if line.endswith("\\") else f"{line}\n" for line in req.lines)


def requirement_name(line: str) -> str | None:
    """`numpy>=1.24 ; python_version<'3.12'` -> `numpy` (normalized); None for options."""
    if line.startswith("-"):
        return None
    m = _NAME.match(line)
    return normalize(m.group(1)) if m else None


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pyproject:
    name: str | None = None
    dependencies: tuple[str, ...] = ()
    optional: dict[str, tuple[str, ...]] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # PEP 735
    poetry: bool = False  # declares [tool.poetry.dependencies]
    has_project_table: bool = False
    uv_workspace: bool = False
    requires_python: str | None = None


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_pyproject(text: str) -> Pyproject:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DepFileError(f"pyproject.toml is not valid TOML ({exc})") from None
    project = _table(data.get("project"))
    tool = _table(data.get("tool"))
    poetry = _table(tool.get("poetry"))
    uv = _table(tool.get("uv"))
    optional_raw = project.get("optional-dependencies")
    groups_raw = data.get("dependency-groups")
    name = project.get("name") if isinstance(project.get("name"), str) else None
    if name is None and isinstance(poetry.get("name"), str):
        name = poetry["name"]
    requires = project.get("requires-python")
    return Pyproject(
        name=name,
        dependencies=_strings(project.get("dependencies")),
        optional={str(k): _strings(v) for k, v in optional_raw.items()}
        if isinstance(optional_raw, dict) else {},
        groups={str(k): _strings(v) for k, v in groups_raw.items()}
        if isinstance(groups_raw, dict) else {},
        poetry=isinstance(poetry.get("dependencies"), dict),
        has_project_table="project" in data,
        uv_workspace="workspace" in uv,
        requires_python=requires if isinstance(requires, str) else None,
    )


@dataclass(frozen=True)
class CondaEnv:
    name: str | None = None
    channels: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()  # conda package specs, e.g. "numpy=1.26"
    pip: tuple[str, ...] = ()  # the nested `- pip:` list
    python: str | None = None  # the series a `python=3.x` entry pins


_CONDA_PYTHON = re.compile(r"^python\s*(?:==?|>=|~=)?\s*(3\.\d{1,2})(?:[.*].*)?$")


def _scalar(text: str) -> str:
    """A YAML plain or quoted scalar, as environment files write them."""
    text = _COMMENT.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_environment_yml(text: str) -> CondaEnv:
    """The subset of YAML that conda environment files use: top-level `name`, `channels` and
    `dependencies` (block lists, with one nested `- pip:` list). Anything else is a
    DepFileError naming the line, rather than a guess."""
    name: str | None = None
    lists: dict[str, list[str]] = {"channels": [], "dependencies": [], "pip": []}
    current: str | None = None
    pip_indent: int | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0 and not body.startswith("-"):
            key, sep, rest = body.partition(":")
            if not sep:
                raise DepFileError(f"environment.yml line {number}: expected `key:`")
            key, rest = key.strip(), _scalar(rest)
            pip_indent = None
            if key == "name":
                name = rest or None
                current = None
            elif key in ("channels", "dependencies"):
                if rest not in ("", "[]"):
                    raise DepFileError(f"environment.yml line {number}: write {key} as a "
                                       "block list (`- item` lines)")
                current = key
            else:
                current = None  # prefix, variables, ...: not the image's business
            continue
        if not body.startswith("-"):
            if current is None:
                continue
            raise DepFileError(f"environment.yml line {number}: expected `- item`")
        item = body[1:].strip()
        if pip_indent is not None and indent > pip_indent:
            lists["pip"].append(_scalar(item))
            continue
        pip_indent = None
        if current is None:
            continue
        if current == "dependencies" and _scalar(item).rstrip(":").strip() == "pip" \
                and _scalar(item).endswith(":"):
            pip_indent = indent
            continue
        if item.endswith(":") or ": " in item:
            raise DepFileError(f"environment.yml line {number}: nested mapping {item!r} is "
                               "not supported (only `- pip:`)")
        lists[current].append(_scalar(item))
    python = None
    for spec in lists["dependencies"]:
        m = _CONDA_PYTHON.match(spec.replace(" ", ""))
        if m:
            python = m.group(1)
    return CondaEnv(name=name, channels=tuple(lists["channels"]),
                    conda=tuple(lists["dependencies"]), pip=tuple(lists["pip"]), python=python)


@dataclass(frozen=True)
class PackageJson:
    name: str | None = None
    engines_node: str | None = None
    scripts: tuple[str, ...] = ()


def parse_package_json(text: str) -> PackageJson:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DepFileError(f"package.json is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DepFileError("package.json is not a JSON object")
    engines = _table(data.get("engines"))
    scripts = _table(data.get("scripts"))
    node = engines.get("node")
    return PackageJson(name=data.get("name") if isinstance(data.get("name"), str) else None,
                       engines_node=node if isinstance(node, str) else None,
                       scripts=tuple(sorted(str(k) for k in scripts)))


def names(lines: Sequence[str]) -> list[str]:
    return [n for n in (requirement_name(line) for line in lines) if n]
