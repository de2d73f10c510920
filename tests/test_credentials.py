"""Credentials resolve exactly as the real `modal` client resolves them: each case is decided
by `credentials.missing_reason()` (no `import modal`) and by the client itself
(`modal.Client.from_env()` against the emulator, which accepts any well-formed credentials)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from modal_offload import credentials
from testing.modal_emulator import ModalEmulator

TOKEN = '[{name}]\ntoken_id = "ak-1"\ntoken_secret = "as-1"\n'
OAUTH = 'oauth_refresh_token = "r"\noauth_client_id = "c"\n'

# (config file text, environment) -> resolved by both or by neither
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "no file, no env": ("", {}),
    "env pair": ("", {"MODAL_TOKEN_ID": "ak-e", "MODAL_TOKEN_SECRET": "as-e"}),
    "default profile": (TOKEN.format(name="default"), {}),
    "single profile not named default": (TOKEN.format(name="work"), {}),
    "single profile, active": (TOKEN.format(name="work") + "active = true\n", {}),
    "single profile, chosen by MODAL_PROFILE": (TOKEN.format(name="work"),
                                                {"MODAL_PROFILE": "work"}),
    "MODAL_PROFILE not in the file": (TOKEN.format(name="default"), {"MODAL_PROFILE": "x"}),
    "two profiles, none active": (TOKEN.format(name="default") + TOKEN.format(name="b"), {}),
    "two profiles, one active": (TOKEN.format(name="a") + TOKEN.format(name="b")
                                 + "active = true\n", {}),
    "two profiles active": (TOKEN.format(name="a") + "active = true\n"
                            + TOKEN.format(name="b") + "active = true\n", {}),
    "id in env, secret in file": ('[default]\ntoken_secret = "as-1"\n',
                                  {"MODAL_TOKEN_ID": "ak-e"}),
    "empty env var hides the file's id": (TOKEN.format(name="default"), {"MODAL_TOKEN_ID": ""}),
    "only a token id": ('[default]\ntoken_id = "ak-1"\n', {}),
    "oauth with secret": ("[default]\n" + OAUTH + 'oauth_client_secret = "s"\n', {}),
    "oauth with jwt key in env": ("[default]\n" + OAUTH, {"MODAL_OAUTH_JWT_KEY": "k"}),
    "oauth with both secret and key": ("[default]\n" + OAUTH + 'oauth_client_secret = "s"\n',
                                       {"MODAL_OAUTH_JWT_KEY": "k"}),
    "oauth without client id": ('[default]\noauth_refresh_token = "r"\n'
                                'oauth_client_secret = "s"\n', {}),
    "token and oauth": (TOKEN.format(name="default") + 'oauth_refresh_token = "r"\n', {}),
    "not a table per profile": ('token_id = "ak-1"\n', {}),
}


@pytest.fixture
def client_env(modal_emulator: ModalEmulator, tmp_path: Path) -> Iterator[Path]:
    """A scratch config path; `modal.config` is reloaded afterwards from the real settings."""
    import modal.config

    yield tmp_path / "modal.toml"
    importlib.reload(modal.config)


def _client_resolves() -> bool:
    import modal
    import modal.client
    import modal.config
    import modal.exception

    try:
        importlib.reload(modal.config)  # reads the file and the profile as at import
    except modal.exception.InvalidError:
        return False
    modal.client._Client._client_from_env = None
    try:
        modal.Client.from_env()
    except (modal.exception.AuthError, modal.exception.InvalidError, ImportError):
        return False  # ImportError: a JWT key without the client's oauth extra
    finally:
        modal.client._Client._client_from_env = None
    return True


@pytest.mark.parametrize("case", sorted(CASES))
def test_resolution_matches_the_client(client_env: Path, case: str) -> None:
    text, env = CASES[case]
    if text:
        client_env.write_text(text)
    scrubbed = {k: v for k, v in os.environ.items()
                if not k.startswith(("MODAL_TOKEN", "MODAL_OAUTH", "MODAL_PROFILE"))}
    with mock.patch.dict(os.environ, {**scrubbed, **env, "MODAL_CONFIG_PATH": str(client_env)},
                         clear=True):
        ours = credentials.missing_reason()
        theirs = _client_resolves()
    assert (ours is None) == theirs, f"{case}: client {'resolves' if theirs else 'refuses'}, " \
                                     f"we say {ours!r}"
    if ours is not None:
        assert "\n" not in ours and len(ours) < 300


def test_no_modal_import() -> None:
    code = ("import sys; from modal_offload import credentials; credentials.missing_reason(); "
            "print('modal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert out.stdout == b"False\n", out.stderr
