"""Whether Modal credentials exist, decided without importing `modal` (~0.35 s).

Resolves exactly as the `modal` client does (modal 1.6.4; a test compares the two):

* the config file is MODAL_CONFIG_PATH or ~/.modal.toml, one table per profile, not read at all
  inside a Modal container (MODAL_IS_REMOTE=1) (modal/config.py:123,126-130,188-210);
* the profile is MODAL_PROFILE, else the one with `active = true`, else "default", even when
  the only profile has another name (modal/config.py:270-276,314); more than one active
  profile, or several profiles with none active while the choice is "default", is an error
  (modal/config.py:296-311);
* every setting is `MODAL_<KEY>` from the environment if that variable exists (even empty),
  else the profile's value, key by key: a token id in the environment and its secret in the
  file is a valid pair (modal/config.py:440-488);
* token credentials (token_id + token_secret) or OAuth ones (oauth_refresh_token +
  oauth_client_id + exactly one of oauth_client_secret / oauth_jwt_key), never both
  (modal/client.py:372-411); the JWT key needs the client's `oauth` extra (pyjwt and
  cryptography, modal/_utils/oauth.py:20-30), without which the client fails at connection.
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


_TOKEN = ("token_id", "token_secret")
_OAUTH = ("oauth_refresh_token", "oauth_client_id", "oauth_client_secret", "oauth_jwt_key")


def _read_config() -> tuple[dict[str, Any], str | None]:
    """The config file's profiles, or an error saying why it cannot be used."""
    path = paths.modal_config_file()
    if os.environ.get("MODAL_IS_REMOTE") == "1":
        return {}, None
    try:
        with path.open("rb") as fh:
            config = tomllib.load(fh)
    except FileNotFoundError:
        return {}, None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return {}, f"cannot read {path} ({exc.__class__.__name__}): fix it or {fix()}"
    if not all(isinstance(v, dict) for v in config.values()):
        return {}, f"{path} must hold one [table] per profile: fix it or {fix()}"
    return config, None


def _profile_name(config: dict[str, Any]) -> tuple[str, str | None]:
    path = paths.modal_config_file()
    active = [name for name, values in config.items() if values.get("active", False) is True]
    name = os.environ.get("MODAL_PROFILE") or (active[0] if active else "default")
    if sum(bool(values.get("active", False)) for values in config.values()) > 1:
        return name, (f"more than one Modal profile is active in {path}: "
                      "run `modal profile activate`")
    if len(config) > 1 and not active and name == "default":
        return name, f"no Modal profile is active in {path}: run `modal profile activate`"
    return name, None


def _setting(config: dict[str, Any], profile: str, key: str) -> Any:
    env_name = f"MODAL_{key.upper()}"
    if env_name in os.environ:
        return os.environ[env_name]
    return config.get(profile, {}).get(key)


# modal/config.py:117,380: the client races these (comma-separated fallbacks,
# modal/_utils/grpc_utils.py:429-482) unless MODAL_SERVER_URL or the profile says otherwise.
DEFAULT_SERVER_URL = "https://api.modal.com,https://api.modal2.com"


def server_url() -> str:
    """The URL(s) the client would dial: MODAL_SERVER_URL, else the active profile's
    `server_url`, else the default (modal/config.py:440-488, the same resolution as above)."""
    config, problem = _read_config()
    profile = "default" if problem else _profile_name(config)[0]
    value = _setting(config, profile, "server_url")
    return str(value) if value else DEFAULT_SERVER_URL


def missing_reason() -> str | None:
    """None when the Modal client is installed and has credentials; else why not + fix."""
    if importlib.util.find_spec("modal") is None:
        from .installation import fix as install_fix

        return f"the `modal` package is not installed: run `{install_fix('dependencies')}`"
    config, problem = _read_config()
    if problem:
        return problem
    profile, problem = _profile_name(config)
    if problem:
        return problem
    if os.environ.get("MODAL_IS_REMOTE") == "1":
        return "inside a Modal container the client ignores credentials: run this on your machine"
    token = [_setting(config, profile, key) for key in _TOKEN]
    refresh, client_id, secret, jwt_key = (_setting(config, profile, key) for key in _OAUTH)
    has_oauth = bool(refresh or client_id or secret or jwt_key)
    if any(token) and has_oauth:
        return f"Modal token and OAuth credentials are both configured: keep one kind. {fix()}"
    if has_oauth:
        if not refresh or not client_id or bool(secret) == bool(jwt_key):
            return ("incomplete Modal OAuth settings: MODAL_OAUTH_REFRESH_TOKEN, "
                    "MODAL_OAUTH_CLIENT_ID and exactly one of MODAL_OAUTH_CLIENT_SECRET or "
                    "MODAL_OAUTH_JWT_KEY are needed")
        if jwt_key and not all(importlib.util.find_spec(m) for m in ("jwt", "cryptography")):
            return ("MODAL_OAUTH_JWT_KEY needs the client's oauth extra: "
                    "run `.venv/bin/pip install 'modal[oauth]'`")
        return None
    if all(token):
        return None
    path = paths.modal_config_file()
    if os.environ.get("MODAL_PROFILE") and profile not in config:
        return f"no Modal credentials (profile {profile!r} is not in {path}): {fix()}"
    if any(token):
        return f"incomplete Modal credentials (profile {profile!r}, {path}): {fix()}"
    return f"no Modal credentials: {fix()}"
