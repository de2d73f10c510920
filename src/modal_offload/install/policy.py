"""The canonical agent policy (`ANTIGRAVITY.md`) and its mirrors in every agent's rules file.

Single-file rules (`AGENTS.md`, `CLAUDE.md`, `GEMINI.md`, `.rules/antigravity.rules`) get the
policy in a marked block, so a user's own rules around it are kept. Rules folders
(`.roo/rules/`, `.kilocode/rules/`, `.cursor/rules/`) get one file of ours. Mirrors go only
where a tool reads them (docs/agent-hooks.md): Codex and Cline CLI read AGENTS.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from .. import paths
from . import blocks, owned
from .agents_base import (
    Item,
    check_symlink,
    create_if_absent,
    ensure_symlink,
    remove_if_ours_unchanged,
    remove_symlink,
)
from .blocks import Status
from .jsonfile import JsonSpec
from .jsonfile import check as json_check
from .jsonfile import install as json_install
from .jsonfile import uninstall as json_uninstall

CANONICAL = "ANTIGRAVITY.md"
BLOCK = "policy"
# Codex reads AGENTS.md (its `.rules` files are execpolicy rules, not prose); Cline CLI 3.x
# reads AGENTS.md too, so it gets no second copy (docs/agent-hooks.md cites both).
BLOCK_FILES = ("AGENTS.md", "CLAUDE.md", "GEMINI.md", ".rules/antigravity.rules")
FOLDER_FILES = (".roo/rules/modal-offload.md", ".kilocode/rules/modal-offload.md",
                ".cursor/rules/modal-offload.mdc")
RUNNER_ALLOW = "modal-agent-runner"  # Roo/Kilo auto-approve commands by prefix
RUNNER_ENV = "MODAL_AGENT_RUNNER"


def template() -> str:
    folder = resources.files("modal_offload").joinpath("templates")
    return folder.joinpath(CANONICAL).read_text("utf-8")


def policy_text(root: Path) -> str:
    try:
        return (root / CANONICAL).read_text(encoding="utf-8")
    except FileNotFoundError:
        return template()


def owned_text(policy: str, mdc: bool = False) -> str:
    head = (f"<!-- {owned.MARKER}: generated from {CANONICAL} by `modal-offload agents "
            f"install`; edit {CANONICAL} instead -->\n")
    front = "---\ndescription: modal-offload terminal policy\nalwaysApply: true\n---\n"
    return (front if mdc else "") + head + policy


def _block_item(path: Path, label: str, root: Path, syntax: blocks.Syntax = blocks.MARKDOWN,
                body: str | None = None) -> Item:
    def text() -> str:
        return body if body is not None else policy_text(root)

    def check() -> tuple[Status, str]:
        return blocks.check(path, BLOCK, text(), syntax), str(path)

    return Item("policy", label, lambda: blocks.install(path, BLOCK, text(), syntax), check,
                lambda: blocks.uninstall(path, BLOCK, syntax))


def _owned_item(path: Path, label: str, root: Path, mode: int = 0o644,
                text: str | None = None) -> Item:
    def content() -> str:
        return text if text is not None else owned_text(policy_text(root),
                                                        mdc=path.suffix == ".mdc")

    return Item("policy", label, lambda: owned.write(path, content(), mode),
                lambda: (owned.check(path, content()), str(path)), lambda: owned.remove(path))


def vscode_spec(path: Path, policy: str) -> JsonSpec:
    return JsonSpec(path, values={("geminicodeassist.rules",): policy,
                                  ("geminicodeassist.agentYoloMode",): False})


def antigravity_settings_spec(path: Path, policy: str, runner: Path) -> JsonSpec:
    env = {"name": RUNNER_ENV, "value": str(runner)}
    return JsonSpec(
        path,
        values={("geminicodeassist.rules",): policy, ("geminicodeassist.agentYoloMode",): False},
        items=((("roo-cline.allowedCommands",), RUNNER_ALLOW),
               (("kilo-code.allowedCommands",), RUNNER_ALLOW),
               (("claudeCode.environmentVariables",), env)),
        ours=lambda x: x == RUNNER_ALLOW or (isinstance(x, dict) and x.get("name") == RUNNER_ENV))


def _json_item(label: str, spec_of: Callable[[], JsonSpec]) -> Item:
    # The spec is built at call time: it holds the policy text, which install may create.
    return Item("policy", label, lambda: json_install(spec_of()), lambda: json_check(spec_of()),
                lambda: json_uninstall(spec_of()))


# What issue 7 installed and issue 14 dropped (docs/agent-hooks.md says why): install and
# uninstall remove them, so an upgrade leaves every file as the user had it.
LEGACY_BLOCKS = ((".rules/codex.rules", blocks.MARKDOWN), (".clinerules", blocks.MARKDOWN),
                 (".gemini/.env", blocks.HASH))
LEGACY_OWNED = (".clinerules/modal-offload.md", ".gemini/bin/bash")


def _legacy_left(path: Path, syntax: blocks.Syntax | None) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, UnicodeDecodeError):
        return False
    return (owned.MARKER in text) if syntax is None else \
        blocks.find(text, BLOCK, syntax) is not None


def legacy_item(root: Path) -> Item:
    """One item for everything older versions wrote that no tool reads."""
    found: list[tuple[Path, blocks.Syntax | None]] = [(root / rel, s) for rel, s in LEGACY_BLOCKS]
    found += [(root / rel, None) for rel in LEGACY_OWNED]

    def remove() -> bool:
        changed = False
        for path, syntax in found:
            if syntax is None:
                changed |= path.is_file() and owned.remove(path)
            else:
                changed |= path.is_file() and blocks.uninstall(path, BLOCK, syntax)
        return changed

    def check() -> tuple[Status, str]:
        left = [str(p.relative_to(root)) for p, syntax in found if _legacy_left(p, syntax)]
        if left:
            return Status.DRIFTED, (f"{', '.join(left)} hold what an older version installed; "
                                    "`modal-offload agents install` removes it")
        return Status.OK, ""

    return Item("policy", "nothing left from older versions", remove, check, remove)


def workspace_items(root: Path) -> list[Item]:
    canonical = root / CANONICAL
    items = [Item("policy", f"policy {CANONICAL}",
                  lambda: create_if_absent(canonical, template()),
                  lambda: (Status.OK if canonical.is_file() else Status.MISSING,
                           str(canonical)),
                  lambda: remove_if_ours_unchanged(canonical))]
    items += [_block_item(root / rel, f"mirror {rel}", root) for rel in BLOCK_FILES]
    items += [_owned_item(root / rel, f"mirror {rel}", root) for rel in FOLDER_FILES]
    vscode = root / ".vscode" / "settings.json"
    items.append(_json_item("gemini code assist .vscode/settings.json",
                            lambda: vscode_spec(vscode, policy_text(root))))
    items.append(legacy_item(root))
    return items


def user_items(root: Path | None) -> list[Item]:
    """Antigravity's user folder; skipped inside a remote session (no user there)."""
    if os.environ.get("MODAL_OFFLOAD_REMOTE") == "1":
        return []
    folder = paths.antigravity_user_dir()
    runner = paths.agent_runner_path()

    def policy() -> str:
        return policy_text(root) if root is not None else template()

    canonical = folder / CANONICAL
    items = [Item("policy", f"antigravity user {CANONICAL}",
                  lambda: owned.write(canonical, owned_text(policy())),
                  lambda: (owned.check(canonical, owned_text(policy())), str(canonical)),
                  lambda: owned.remove(canonical))]
    for name in ("AGENTS.md", "CLAUDE.md"):
        link = folder / name
        items.append(Item("policy", f"antigravity user {name}",
                          lambda link=link: ensure_symlink(link, CANONICAL),  # type: ignore[misc]
                          lambda link=link: check_symlink(link, CANONICAL),  # type: ignore[misc]
                          lambda link=link: remove_symlink(link, CANONICAL)))  # type: ignore[misc]
    settings = folder / "settings.json"
    items.append(_json_item("antigravity user settings.json",
                            lambda: antigravity_settings_spec(settings, policy(), runner)))
    return items


def created_folders(root: Path) -> list[Path]:
    """Folders our workspace files may have made, for pruning after uninstall."""
    rels = [".rules", ".roo/rules", ".kilocode/rules", ".cursor/rules", ".vscode",
            ".gemini/bin", ".gemini"]
    return [root / r for r in rels]
