"""Surgical edits of JSON-with-comments files (VS Code, Claude, Gemini, Cursor settings).

Why our own and not a library: every JSON5/JSONC package we looked at either drops comments
(`commentjson`, `json5`) or offers a CST whose re-serialisation we would have to trust
byte for byte. Here a file is never re-serialised: we parse it only to learn where each
value starts and ends, then splice new text in or cut ours out. Everything we do not
touch (comments, trailing commas, key order, indentation, line endings) stays as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import OffloadError

Path_ = tuple[str, ...]


class JsoncError(OffloadError):
    pass


@dataclass
class Node:
    kind: str  # "object", "array" or "scalar"
    start: int
    end: int  # exclusive
    keys: list[str] = field(default_factory=list)
    key_starts: list[int] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def fail(self, what: str) -> JsoncError:
        line = self.text.count("\n", 0, self.i) + 1
        return JsoncError(f"not valid JSON(C) at line {line}: {what}")

    def skip(self) -> None:
        """Skip whitespace and // or /* */ comments."""
        t, n = self.text, len(self.text)
        while self.i < n:
            c = t[self.i]
            if c in " \t\r\n\ufeff":
                self.i += 1
            elif t.startswith("//", self.i):
                end = t.find("\n", self.i)
                self.i = n if end < 0 else end + 1
            elif t.startswith("/*", self.i):
                end = t.find("*/", self.i + 2)
                if end < 0:
                    raise self.fail("unterminated comment")
                self.i = end + 2
            else:
                return

    def string(self) -> str:
        t, start = self.text, self.i
        self.i += 1
        while self.i < len(t):
            c = t[self.i]
            if c == "\\":
                self.i += 2
            elif c == '"':
                self.i += 1
                try:
                    value: str = json.loads(t[start:self.i])
                except ValueError:
                    raise self.fail("bad string") from None
                return value
            elif c == "\n":
                break
            else:
                self.i += 1
        raise self.fail("unterminated string")

    def value(self) -> Node:
        self.skip()
        if self.i >= len(self.text):
            raise self.fail("value expected")
        c, start = self.text[self.i], self.i
        if c == "{":
            return self.container(start, "object", "}")
        if c == "[":
            return self.container(start, "array", "]")
        if c == '"':
            self.string()
            return Node("scalar", start, self.i)
        while self.i < len(self.text) and self.text[self.i] not in ",]}/ \t\r\n":
            self.i += 1
        try:
            json.loads(self.text[start:self.i])
        except ValueError:
            raise self.fail(f"bad value {self.text[start:self.i][:20]!r}") from None
        return Node("scalar", start, self.i)

    def container(self, start: int, kind: str, close: str) -> Node:
        node = Node(kind, start, start)
        self.i += 1
        while True:
            self.skip()
            if self.i < len(self.text) and self.text[self.i] == close:
                self.i += 1
                node.end = self.i
                return node
            if kind == "object":
                if self.i >= len(self.text) or self.text[self.i] != '"':
                    raise self.fail("key expected")
                node.key_starts.append(self.i)
                node.keys.append(self.string())
                self.skip()
                if self.i >= len(self.text) or self.text[self.i] != ":":
                    raise self.fail("':' expected")
                self.i += 1
            node.children.append(self.value())
            self.skip()
            if self.i < len(self.text) and self.text[self.i] == ",":
                self.i += 1
            elif self.i >= len(self.text) or self.text[self.i] != close:
                raise self.fail(f"',' or '{close}' expected")


def parse(text: str) -> Node:
    p = _Parser(text)
    node = p.value()
    p.skip()
    if p.i != len(text):
        raise p.fail("trailing content")
    return node


def to_python(text: str, node: Node) -> Any:
    if node.kind == "object":
        return {k: to_python(text, c) for k, c in zip(node.keys, node.children, strict=True)}
    if node.kind == "array":
        return [to_python(text, c) for c in node.children]
    return json.loads(text[node.start:node.end])


def loads(text: str) -> Any:
    return to_python(text, parse(text))


def _find(root: Node, path: Path_) -> tuple[Node, int]:
    """The deepest object on `path` and how many keys of `path` it consumed."""
    node, depth = root, 0
    for key in path:
        if node.kind != "object" or key not in node.keys:
            break
        child = node.children[len(node.keys) - 1 - node.keys[::-1].index(key)]
        if child.kind != "object" and depth + 1 < len(path):
            raise JsoncError(f"{'.'.join(path[:depth + 1])} is not an object",
                             "we leave the file untouched")
        node, depth = child, depth + 1
    return node, depth


def node_at(text: str, path: Path_) -> Node | None:
    node, depth = _find(parse(text), path)
    return node if depth == len(path) else None


def _indent_of(text: str, pos: int) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    line = text[line_start:pos]
    return line[:len(line) - len(line.lstrip(" \t"))]


def _unit(text: str) -> str:
    return "\t" if "\n\t" in text else "  "


def render(value: Any, indent: str, unit: str = "  ") -> str:
    dumped = json.dumps(value, indent=unit if unit != "\t" else "\t", ensure_ascii=False)
    return dumped.replace("\n", "\n" + indent)


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _insert(text: str, container: Node, member: str) -> str:
    """Splice `member` (rendered, no indent) in as the last entry of `container`."""
    nl, unit = _newline(text), _unit(text)
    if container.children:
        last = container.children[-1]
        indent = _indent_of(text, container.key_starts[-1] if container.keys else last.start)
        body = member.replace("\n", nl + indent)
        return f"{text[:last.end]},{nl}{indent}{body}{text[last.end:]}"
    outer = _indent_of(text, container.start)
    body = member.replace("\n", nl + outer + unit)
    # An empty container keeps whatever was inside it (a comment, say) before our entry.
    keep = text[container.start + 1:container.end - 1].rstrip(" \t\r\n")
    return (f"{text[:container.start + 1]}{keep}{nl}{outer}{unit}{body}{nl}{outer}"
            f"{text[container.end - 1:]}")


def set_value(text: str, path: Path_, value: Any) -> str:
    """Set `path` to `value`, creating the objects on the way; nothing else changes."""
    root = parse(text)
    if root.kind != "object":
        raise JsoncError("the top level is not an object", "we leave the file untouched")
    node, depth = _find(root, path)
    unit = _unit(text)
    if depth == len(path):
        new = render(value, _indent_of(text, node.start), unit)
        return text[:node.start] + new + text[node.end:]
    if node.kind != "object":
        raise JsoncError(f"{'.'.join(path[:depth])} is not an object",
                         "we leave the file untouched")
    rest: Any = value
    for key in reversed(path[depth + 1:]):
        rest = {key: rest}
    member = json.dumps(path[depth], ensure_ascii=False) + ": " + render(rest, "", unit)
    return _insert(text, node, member)


def append_item(text: str, path: Path_, item: Any) -> str:
    """Append `item` to the array at `path` (created when missing)."""
    node = node_at(text, path)
    if node is None:
        return set_value(text, path, [item])
    if node.kind != "array":
        raise JsoncError(f"{'.'.join(path)} is not a list", "we leave the file untouched")
    return _insert(text, node, render(item, "", _unit(text)))


def _cut(text: str, container: Node, index: int) -> str:
    """Remove entry `index` of `container` with its separating comma."""
    child = container.children[index]
    start = container.key_starts[index] if container.keys else child.start
    if index > 0:
        prev = container.children[index - 1]
        return text[:prev.end] + text[child.end:]
    if len(container.children) > 1:
        nxt = container.children[1]
        nxt_start = container.key_starts[1] if container.keys else nxt.start
        return text[:start] + text[nxt_start:]
    # The only entry: drop it, its trailing comma, and the blank line it leaves.
    after = child.end
    p = _Parser(text)
    p.i = after
    p.skip()
    if p.i < len(text) and text[p.i] == ",":
        after = p.i + 1
    inner_before = text[container.start + 1:start]
    inner_after = text[after:container.end - 1]
    if not inner_before.strip() and not inner_after.strip():
        return text[:container.start + 1] + text[container.end - 1:]
    return text[:start] + text[after:]


def remove_key(text: str, path: Path_) -> str:
    parent = node_at(text, path[:-1])
    if parent is None or parent.kind != "object" or path[-1] not in parent.keys:
        return text
    return _cut(text, parent, len(parent.keys) - 1 - parent.keys[::-1].index(path[-1]))


def remove_item(text: str, path: Path_, index: int) -> str:
    node = node_at(text, path)
    if node is None or node.kind != "array" or index >= len(node.children):
        return text
    return _cut(text, node, index)
