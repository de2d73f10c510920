"""Every test runs with an isolated HOME and XDG folders; touching the real home fails it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

pytest_plugins = ["testing.modal_emulator.pytest_fixtures"]

# CI gates on the same examples every run (derived from each test's name): a property test
# passes or fails there on the code, never on the draw. A developer's run draws afresh,
# which is where new counterexamples are found (and then kept with @example).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("MODAL_OFFLOAD_HYPOTHESIS_PROFILE", "default"))

REAL_HOME = Path(os.environ.get("HOME") or Path.home())
# What this project could ever write in a home folder: watched before and after each test.
WATCHED = [
    ".primary_compute_modal_usage.json", ".zshenv", ".zprofile", ".zshrc", ".bashrc",
    ".profile", ".modal.toml", ".local/bin/modal-agent-runner", ".cache/modal-offload",
    ".local/state/modal-offload", ".config/modal-offload", ".config/Antigravity",
    ".claude", ".gemini", ".codex", ".cursor",
]
_SCRUBBED_PREFIXES = ("MODAL_", "PRIMARY_MODAL_", "XDG_")


def _fingerprint() -> dict[str, tuple[int, int] | None]:
    out: dict[str, tuple[int, int] | None] = {}
    for rel in WATCHED:
        try:
            st = (REAL_HOME / rel).lstat()
            out[rel] = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            out[rel] = None
    return out


@pytest.fixture(autouse=True)
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    before = _fingerprint()
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES) or name in {"BASH_ENV", "ENV", "ZDOTDIR"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / ".run"))
    (home / ".run").mkdir(mode=0o700)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(home / ".modal.toml"))
    monkeypatch.setenv("MODAL_OFFLOAD_HOST", "0")
    yield home
    after = _fingerprint()
    touched = [rel for rel in WATCHED if before[rel] != after[rel]]
    assert not touched, f"test touched the real home {REAL_HOME}: {touched}"
