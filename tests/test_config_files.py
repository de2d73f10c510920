"""Reading the config files (config._read_toml): a blank file is skipped without the TOML
parser (issue 17), and everything else reads exactly as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from modal_offload import config
from modal_offload.errors import ConfigError


def _load(ws: Path, text: bytes) -> config.Settings:
    (ws / ".modal-offload.toml").write_bytes(text)
    return config.load(ws, environ={})


@pytest.mark.parametrize("text", [b"", b"\n", b"  \t\n\n"])
def test_a_blank_workspace_file_gives_the_defaults(tmp_path: Path, text: bytes) -> None:
    settings = _load(tmp_path, text)
    assert settings.exec_cpu == config.Settings().exec_cpu
    assert settings.sources == {}


def test_a_file_with_content_is_parsed(tmp_path: Path) -> None:
    settings = _load(tmp_path, b"\n# a comment\n[resources]\nexec_cpu = 2\n")
    assert settings.exec_cpu == 2.0
    assert settings.sources["exec_cpu"].endswith(".modal-offload.toml")


@pytest.mark.parametrize("text", [b"exec_cpu = ", b"\x0c", b"\r", b"\xff\xfe = 1\n"])
def test_a_broken_file_is_one_line_naming_it(tmp_path: Path, text: bytes) -> None:
    """Not TOML (a form feed or a lone CR is not TOML whitespace), or not UTF-8."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    line = caught.value.one_line()
    assert ".modal-offload.toml" in line and "\n" not in line
