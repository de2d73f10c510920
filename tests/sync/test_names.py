"""The path classifier (names.py) under hostile spellings: property tests (issue 13)."""

from __future__ import annotations

import io
import tarfile
import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from modal_offload.sync.extract import SafeExtractor
from modal_offload.sync.ignore import IgnoreRules
from modal_offload.sync.names import (
    HARD_NAMES,
    PROTECTED_NAMES,
    Protection,
    SecretFilter,
    fold,
    hard_ignored,
)

# Code points a case-insensitive or normalizing filesystem ignores or merges (HFS+ skips
# these while comparing names; see names.py).
IGNORABLE = ["\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u206a", "\ufeff"]


@st.composite
def spelling_of(draw: st.DrawFn, name: str) -> str:
    """`name` as a hostile remote might spell it: any case, NFC or NFD, with ignorable
    code points sprinkled in and trailing dots or spaces (Windows drops those)."""
    chars = [c.upper() if draw(st.booleans()) else c for c in name]
    out = ""
    for c in chars:
        out += c
        if draw(st.integers(0, 5)) == 0:
            out += draw(st.sampled_from(IGNORABLE))
    out += draw(st.sampled_from(["", ".", " ", ". "]))
    return unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD"])), out)


hard_spellings = st.sampled_from(sorted(HARD_NAMES)).flatmap(spelling_of)
protected_spellings = st.sampled_from(sorted(PROTECTED_NAMES)).flatmap(spelling_of)
names = st.text(st.characters(codec="utf-8", exclude_characters="/\0"),
                min_size=1, max_size=20)


@given(hard_spellings)
def test_every_spelling_of_a_hard_name_is_hard_ignored(name: str) -> None:
    assert hard_ignored(name)
    assert IgnoreRules(Path("/nonexistent")).for_dir("").ignored(name, True)


@given(protected_spellings, names)
def test_every_spelling_of_a_protected_name_is_protected_anywhere(name: str, below: str) -> None:
    protection = Protection()
    assert protection.protected(name)
    assert protection.protected(f"src/{name}")
    assert protection.protected(f"{name}/{below}")


@given(names)
def test_fold_is_idempotent_and_blind_to_normalization_and_case(name: str) -> None:
    assert fold(fold(name)) == fold(name)
    assert fold(unicodedata.normalize("NFD", name)) == fold(unicodedata.normalize("NFC", name))
    assert fold(name.upper()) == fold(name.lower()) or not name.isascii()


@given(names)
def test_names_that_do_not_fold_to_a_hard_name_are_not_hard(name: str) -> None:
    key = fold(name)
    expected = (key in HARD_NAMES or key.endswith(".mo-sync-tmp")
                or key.startswith(".modal-offload-staging-"))
    assert hard_ignored(name) == expected


@given(st.sampled_from([".env", ".npmrc", "id_rsa", "id_ed25519", "server.pem", "tls.key",
                        ".netrc", ".pypirc"]).flatmap(spelling_of))
def test_secret_spellings_are_held_back_unless_allowed(name: str) -> None:
    assert SecretFilter().secret("sub", name, False)
    assert not SecretFilter([name]).secret("sub", name, False)
    assert not SecretFilter([f"sub/{name}"]).secret("sub", name, False)
    assert SecretFilter([f"other/{name}"]).secret("sub", name, False)


def test_secret_folders_and_files_in_folders() -> None:
    secrets = SecretFilter()
    assert secrets.secret("", ".ssh", True) and secrets.secret("a", ".GnuPG", True)
    assert secrets.secret(".aws", "credentials", False)
    assert secrets.secret("home/.AWS", "credentials", False)
    assert not secrets.secret("docs", "credentials", False)
    assert not secrets.secret("", ".env.example", False)


def _tar(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return buf.getvalue()


@given(st.lists(st.tuples(hard_spellings, st.sampled_from(["hooks/pre-commit", "ls"])),
                min_size=1, max_size=4))
def test_the_extractor_refuses_hard_names_in_any_spelling(
        members: list[tuple[str, str]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = list(dict.fromkeys(f"{top}/{rest}" for top, rest in members))
        result = SafeExtractor(root, rules=IgnoreRules.load(root)).extract(
            io.BytesIO(_tar(names)))
        assert not result.installed
        assert {p for p, _ in result.refused} == set(names)
        assert list(root.iterdir()) == []
