"""One host per user configuration, not one per workspace or activated shell."""

from __future__ import annotations

import re
from pathlib import Path

from modal_offload.host.lifecycle import _KEY_NAMES, config_key

BASE = {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1", "MODAL_OFFLOAD_BACKEND": "local"}


def test_activation_and_per_shell_markers_do_not_split_the_host() -> None:
    activated = {**BASE, "MODAL_SHIMS_ACTIVE": "1", "MODAL_OFFLOAD_SHIMS_DIR": "/ws/.modal-shims",
                 "MODAL_OFFLOAD_SAVED_PATH": "/usr/bin", "MODAL_OFFLOAD_BYPASS": "1"}
    assert config_key(activated) == config_key(BASE)


def test_what_changes_files_or_credentials_gets_its_own_host() -> None:
    for name, value in [("HOME", "/home/other"), ("PRIMARY_MODAL_USAGE_FILE", "/x.json"),
                        ("MODAL_PROFILE", "work"), ("MODAL_OFFLOAD_STATE_DIR", "/s"),
                        ("XDG_CACHE_HOME", "/c")]:
        assert config_key({**BASE, name: value}) != config_key(BASE), name


def test_every_location_override_of_paths_is_part_of_the_key() -> None:
    source = (Path(__file__).parents[2] / "src" / "modal_offload" / "paths.py").read_text()
    # Agent folders (CLAUDE_CONFIG_DIR, CODEX_HOME) are for installers; the host never uses them.
    overrides = set(re.findall(r'_env_path\("((?:PRIMARY_)?MODAL_[A-Z_]+)"\)', source))
    assert overrides and overrides <= set(_KEY_NAMES)
