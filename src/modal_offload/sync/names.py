"""The path classifier: which names sync treats specially, compared the way filesystems do.

macOS (APFS, HFS+) and Windows compare names case-insensitively; APFS and HFS+ also treat
NFC and NFD spellings of a name as the same name, and HFS+ skips some zero-width code
points while comparing (git's `is_hfs_dotgit`, utf8.c `next_hfs_char`, written for
CVE-2014-9390). So `.GIT/hooks`, `.Git\u200c/hooks` and an NFD spelling may all land in
`.git/hooks` there. Every *security* decision on a name (hard ignores, secret-looking
files, protected paths) therefore compares `fold(name)`: NFKD, combining marks and
HFS-ignorable code points dropped, case-folded, trailing dots and spaces dropped (Windows
drops them too). Folding is deliberately coarser than any filesystem: refusing an odd
name like `.gït` costs nothing, letting one through could run code on the laptop.
Ordinary ignore rules (.gitignore) keep git's case-sensitive semantics.

Three lists, documented in the README's security section:
  HARD_NAMES       never synced in either direction, no rule file can re-include them
  SECRET_*         never uploaded (nor accepted back) unless the user allows them by name
                   in config (`upload_secrets`)
  PROTECTED_*      uploaded as usual, but a remote change to them is never applied back:
                   the remote copy is kept beside the file as `<name>.remote-<hash>`

Stays light (stdlib only): the remote sync agent imports it.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable

TMP_SUFFIX = ".mo-sync-tmp"
STAGING_PREFIX = ".modal-offload-staging-"
HARD_NAMES = frozenset({".git", ".modal-shims"})

# Code points HFS+ ignores when comparing names (git utf8.c next_hfs_char).
_HFS_IGNORABLE = frozenset([0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F),
                            *range(0x206A, 0x2070), 0xFEFF])

# Secret-looking files: never uploaded unless allowed by name. Matched on folded names.
SECRET_NAME_GLOBS = (
    ".env", ".env.*", ".envrc.local", ".npmrc", ".pypirc", ".netrc", "_netrc", ".pgpass",
    ".git-credentials", ".htpasswd", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx",
)
# Conventionally committed templates of `.env`: not secrets.
SECRET_NAME_EXCEPTIONS = frozenset({".env.example", ".env.sample", ".env.template",
                                    ".env.dist"})
SECRET_DIRS = frozenset({".ssh", ".gnupg"})  # the whole folder
SECRET_IN_DIR = frozenset({(".aws", "credentials"), (".docker", "config.json"),
                           (".kube", "config"), (".config/gcloud", "credentials.db")})

# Protected: what controls the laptop (our config, ignore rules, git, agent configs).
# A path is protected when any of its components folds to one of these names...
PROTECTED_NAMES = frozenset({
    ".git", ".modal-shims", ".modal-offload.toml", ".gitignore", ".modal-offloadignore",
    ".gitattributes", ".gitmodules",
    ".claude", ".gemini", ".codex", ".cursor", ".clinerules", ".roo", ".kilocode", ".rules",
    "agents.md", "claude.md", "gemini.md", "antigravity.md",
    # What git and its hook managers run or obey on the laptop (red team): the hooks behind
    # .git/hooks and core.hooksPath read these (husky 9's `.husky/pre-commit` runs from
    # `.husky/_`, pre-commit's and lefthook's configs name commands), and git-lfs takes
    # its server from `.lfsconfig` (where the next push uploads).
    ".husky", ".pre-commit-config.yaml", ".lfsconfig", ".overcommit.yml",
    *(f"{dot}lefthook{local}.{ext}" for dot in ("", ".") for local in ("", "-local")
      for ext in ("yml", "yaml", "json", "toml")),
})
# ... or it ends with one of these (folder, name) pairs.
PROTECTED_IN_DIR = frozenset({(".vscode", "settings.json"), (".vscode", "tasks.json")})

_IN_DIR_NAMES = frozenset(n for _, n in SECRET_IN_DIR)
_SECRET_RE = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in SECRET_NAME_GLOBS))


def fold(name: str) -> str:
    """The comparison key of a name (or a path: '/' is kept) for security decisions."""
    if name.isascii():
        return name.lower().rstrip(". ")
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text
                   if not unicodedata.combining(c) and ord(c) not in _HFS_IGNORABLE)
    return unicodedata.normalize("NFC", text.casefold()).rstrip(". ")


def hard_ignored(name: str) -> bool:
    """True for names no rule file can re-include: they never travel either way."""
    return hard_key(fold(name))


def hard_key(key: str) -> bool:
    """`hard_ignored` for an already folded name."""
    return key in HARD_NAMES or key.endswith(TMP_SUFFIX) or key.startswith(STAGING_PREFIX)


def _fold_path(relpath: str) -> list[str]:
    return [fold(part) for part in relpath.split("/")]


class SecretFilter:
    """Secret-looking paths, minus what the user allowed by name (`upload_secrets`).

    An allowed entry is a workspace-relative path (`config/dev.pem`) or a bare name
    (`.env.test`, any folder); globs are not accepted, so allowing is always deliberate.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = frozenset(fold(a.strip("/")) for a in allowed if a.strip("/"))

    def secret(self, reldir: str, name: str, is_dir: bool) -> bool:
        """Whether entry `name` of folder `reldir` is secret-looking and not allowed."""
        return self.secret_key(reldir, fold(name), is_dir)

    def secret_key(self, reldir: str, key: str, is_dir: bool) -> bool:
        """`secret` for an already folded name (this runs once per scanned path)."""
        if is_dir:
            hit = key in SECRET_DIRS
        elif key in _IN_DIR_NAMES:
            parent = fold(reldir)
            hit = any(parent == d or parent.endswith("/" + d)
                      for d, n in SECRET_IN_DIR if n == key)
        else:
            hit = key not in SECRET_NAME_EXCEPTIONS and _SECRET_RE.match(key) is not None
        if not hit:
            return False
        if key in self.allowed:
            return False
        rel = f"{fold(reldir)}/{key}" if reldir else key
        return rel not in self.allowed


class Protection:
    """Protected paths: the built-in list plus gitignore-style patterns from config
    (`protected`), both matched on folded paths."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        patterns = [fold(p) for p in extra if p.strip()]
        self._spec = None
        if patterns:
            import pathspec  # only when configured: the remote agent never needs it here

            self._spec = pathspec.GitIgnoreSpec.from_lines(patterns)

    def protected(self, relpath: str) -> bool:
        parts = _fold_path(relpath)
        if any(p in PROTECTED_NAMES for p in parts):
            return True
        if len(parts) >= 2 and (parts[-2], parts[-1]) in PROTECTED_IN_DIR:
            return True
        if self._spec is not None:
            # Every prefix too: a pattern naming a folder protects what is inside it.
            return any(self._spec.match_file("/".join(parts[:n]) + ("/" if n < len(parts)
                                                                     else ""))
                       for n in range(1, len(parts) + 1))
        return False
