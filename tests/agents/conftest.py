"""A workspace and a home that already hold user content, as real users' do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_workspace

USER_FILES = {
    "AGENTS.md": "# Team rules\n\nUse tabs.",  # no final newline, on purpose
    "CLAUDE.md": "# Claude notes\nBe brief.\n",
    ".vscode/settings.json": (
        "{\n"
        "    // editor prefs, hand-written\n"
        '    "editor.tabSize": 4, /* keep */\n'
        '    "files.exclude": {"**/.git": true,},\n'
        "}\n"),
    ".claude/settings.json": (
        "{\n"
        '  "permissions": {"allow": ["Bash(ls:*)"]},\n'
        '  "hooks": {\n'
        '    "PreToolUse": [\n'
        '      {"matcher": "Write", "hooks": [{"type": "command", "command": "lint-guard"}]},\n'
        "    ],\n"
        "  },\n"
        "}\n"),
    ".gemini/settings.json": '{\n  "theme": "Dracula",\n  "tools": {"sandbox": false}\n}\n',
    ".cursor/hooks.json": (
        '{\n  "version": 1,\n  "hooks": {\n'
        '    "afterFileEdit": [{"command": "./fmt.sh"}]\n  }\n}\n'),
}
HOME_FILES = {
    ".claude/settings.json": '{\n  // mine\n  "model": "opus",\n}\n',
    ".codex/hooks.json": (
        '{"hooks": {"PreToolUse": [{"matcher": "^Bash$", '
        '"hooks": [{"type": "command", "command": "audit"}]}]}}'),
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "project", "", USER_FILES)


@pytest.fixture
def home_with_content(tmp_home: Path) -> Path:
    for rel, text in HOME_FILES.items():
        path = tmp_home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_home


def snapshot(*roots: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes | str]:
    """Every file (bytes), symlink (target) and folder under `roots`."""
    out: dict[str, bytes | str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            rel = str(path)
            if any(part in path.parts for part in skip):
                continue
            if path.is_symlink():
                out[rel] = "-> " + str(path.readlink())
            elif path.is_file():
                out[rel] = path.read_bytes()
            else:
                out[rel] = "dir"
    return out
