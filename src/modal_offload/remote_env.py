"""The environment a remote command sees: an allowlist, never the laptop's whole env."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

ALWAYS_FORWARDED = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TERM", "COLORTERM",
                    "TZ",
                    "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CLICOLOR")
# Names that look like they hold a secret: a glob in MODAL_OFFLOAD_FORWARD_ENV never
# forwards them; naming one exactly does (the user chose it). Matched on the upper-cased
# name, after removing the harmless words below (#13).
SECRET_PATTERNS = ("*TOKEN*", "*SECRET*", "*PASS*", "*PWD*", "*KEY*", "*PAT*", "*DSN*",
                   "*CREDENTIAL*", "*AUTH*", "*COOKIE*", "*PRIVATE*", "*JWT*", "AWS_*")
# One regex for all of them: fnmatch compiles each pattern on first use, 13 compiles on
# every command (~1 ms, issue 17); the same globs, the same matches.
_SECRET_NAME = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in SECRET_PATTERNS))
# `*PAT*` and `*AUTH*` would also withhold PATH, PYTHONPATH and GIT_AUTHOR_NAME from a
# `PYTHON*` or `GIT_*` glob: these words are not secrets, and are removed before matching
# (GITHUB_PAT, PAT_TOKEN, OAUTH_X and AUTH still match). AUTHORIZATION/AUTHORISATION (an
# HTTP header's value, a bearer token) is not AUTHOR: removing that word left `IZATION`.
_HARMLESS_WORDS = re.compile(r"PATH|AUTHOR(?!I[SZ])")
# A value that carries credentials in a URL (`postgres://user:pw@host`, `https://tok@host`)
# is a secret whatever its name (DATABASE_URL, PIP_INDEX_URL).
_URL_WITH_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s@]+@")
# Likewise a value shaped like a well-known credential, whatever its name (`MYAPP_GH` under
# a `MYAPP_*` glob): GitHub, GitLab, Slack, OpenAI/Anthropic/Stripe-style keys, AWS access
# key ids, JWTs, PEM private keys (red team, issue 13).
_CREDENTIAL_VALUE = re.compile(
    r"(?:^|[\s\"'=:])(?:gh[pousr]_[A-Za-z0-9]{20}|github_pat_|glpat-|xox[abposr]-|"
    r"sk-[A-Za-z0-9_-]{16}|[sr]k_live_|(?:AKIA|ASIA)[A-Z0-9]{16}|"
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ)|-----BEGIN [A-Z ]*PRIVATE KEY-----")
# Never forwarded, even by name: the laptop's working folder means nothing remotely (the
# remote command gets its own), and its value would reveal local paths.
NEVER_FORWARDED = frozenset({"PWD", "OLDPWD"})
REMOTE_MARKERS = {"MODAL_OFFLOAD_REMOTE": "1", "IN_MODAL_TASK_RUNNER": "1"}


def looks_secret(name: str, value: str = "") -> bool:
    upper = _HARMLESS_WORDS.sub("_", name.upper())
    if _SECRET_NAME.match(upper):
        return True
    return bool(_URL_WITH_CREDENTIALS.search(value) or _CREDENTIAL_VALUE.search(value))


def remote_environment(local: Mapping[str, str], allow: Iterable[str]) -> dict[str, str]:
    """Forward the basics plus `allow`; entries of `allow` may be globs, but a secret-looking
    name (or a value with credentials in a URL) is only forwarded when `allow` names it
    exactly. PWD and OLDPWD never are."""
    allow = tuple(allow)
    exact = {a for a in allow if not any(c in a for c in "*?[")}
    patterns = [a for a in allow if a not in exact]
    env: dict[str, str] = {}
    for name, value in local.items():
        if name in NEVER_FORWARDED:
            continue
        listed = name in ALWAYS_FORWARDED or any(fnmatch.fnmatchcase(name, p) for p in patterns)
        if name in exact or (listed and not looks_secret(name, value)):
            env[name] = value
    env.update(REMOTE_MARKERS)
    return env
