"""The README and docs stand on their own: every relative link resolves to a file inside the
repository, and nothing points outside it (the README once named `../shared/DESIGN.md`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
CODE_PATH = re.compile(r"`(\.\./[^`\s]*)`")  # a path written as code that leaves the repository


def _targets(text: str) -> list[str]:
    return LINK.findall(text) + REFERENCE.findall(text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in _targets(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("file:"):
            continue  # a web address
        if target.startswith("#"):
            continue  # an anchor in the same page
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.is_relative_to(REPO.resolve()) or not path.exists():
            broken.append(target)
    assert not broken, f"{doc.name}: links that do not resolve inside the repository: {broken}"
    assert not CODE_PATH.findall(text), f"{doc.name} names paths outside the repository"


def test_the_checker_sees_links() -> None:
    # The design summary and the decisions are linked, so the check above has work to do.
    readme = _targets((REPO / "README.md").read_text(encoding="utf-8"))
    assert "docs/design.md" in readme and "docs/decisions.md" in readme
    assert _targets("[x](../shared/DESIGN.md)\n[y]: ../z") == ["../shared/DESIGN.md", "../z"]
