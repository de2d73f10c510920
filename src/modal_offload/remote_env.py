"""The environment a remote command sees: an allowlist, never the laptop's whole env."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

ALWAYS_FORWARDED = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TERM", "COLORTERM",
                    "TZ",
                    "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CLICOLOR")
SECRET_PATTERNS = ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*KEY*", "AWS_*")
REMOTE_MARKERS = {"MODAL_OFFLOAD_REMOTE": "1", "IN_MODAL_TASK_RUNNER": "1"}


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern) for pattern in SECRET_PATTERNS)


def remote_environment(local: Mapping[str, str], allow: Iterable[str]) -> dict[str, str]:
    """Forward the basics plus `allow`; entries of `allow` may be globs, but a secret-looking
    name is only forwarded when `allow` names it exactly."""
    allow = tuple(allow)
    exact = {a for a in allow if not any(c in a for c in "*?[")}
    patterns = [a for a in allow if a not in exact]
    env: dict[str, str] = {}
    for name, value in local.items():
        listed = name in ALWAYS_FORWARDED or any(fnmatch.fnmatchcase(name, p) for p in patterns)
        if name in exact or (listed and not looks_secret(name)):
            env[name] = value
    env.update(REMOTE_MARKERS)
    return env
