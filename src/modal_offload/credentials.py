"""Whether Modal credentials exist, decided without importing `modal` (~0.35 s).

Follows Modal's own conventions: MODAL_TOKEN_ID + MODAL_TOKEN_SECRET in the environment, or
a profile in ~/.modal.toml (MODAL_CONFIG_PATH), chosen by MODAL_PROFILE or `active = true`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from . import paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib



def fix() -> str:
    """What to do about missing or rejected credentials, for how we were installed."""
    from .installation import fix as install_fix

    return f"run `{install_fix('auth')}` or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET"


def _profile(config: dict[str, Any]) -> dict[str, Any] | None:
    wanted = os.environ.get("MODAL_PROFILE")
    profiles = {k: v for k, v in config.items() if isinstance(v, dict)}
    if wanted:
        return profiles.get(wanted)
    active = [v for v in profiles.values() if v.get("active")]
    if active:
        return active[0]
    return next(iter(profiles.values()), None) if len(profiles) == 1 else None


def missing_reason() -> str | None:
    """None when the Modal client is installed and has credentials; else why not + fix."""
    if importlib.util.find_spec("modal") is None:
        from .installation import fix as install_fix

        return f"the `modal` package is not installed: run `{install_fix('dependencies')}`"
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return None
    path = paths.modal_config_file()
    try:
        with path.open("rb") as fh:
            config = tomllib.load(fh)
    except FileNotFoundError:
        return f"no Modal credentials: {fix()}"
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return f"cannot read {path} ({exc.__class__.__name__}): fix it or {fix()}"
    profile = _profile(config)
    if profile and profile.get("token_id") and profile.get("token_secret"):
        return None
    which = os.environ.get("MODAL_PROFILE")
    where = f"profile {which!r} in {path}" if which else f"no active profile in {path}"
    return f"no Modal credentials ({where}): {fix()}"
