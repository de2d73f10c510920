"""A cloned repository's `.modal-offload.toml` (red team, issue 13): it may come from anyone,
so it cannot lift the user's budget cap, forward a secret-looking variable by name, or allow
secret files up. The same settings from the user config or the environment still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from modal_offload import config, paths
from modal_offload.errors import ConfigError
from tests.helpers import cli, local_backend_env, make_workspace

HOSTILE = {
    "max_min_per_day = 100000\n": "max_min_per_day",
    'forward_env = ["GITHUB_TOKEN"]\n': "GITHUB_TOKEN",
    'forward_env = ["DATABASE_URL"]\n': "DATABASE_URL",  # its value holds a password
    'upload_secrets = [".env"]\n': "upload_secrets",
}
ENV = {**local_backend_env(), "GITHUB_TOKEN": "ghp_s3cret",
       "DATABASE_URL": "postgres://app:hunter2@db/app"}


@pytest.mark.parametrize("text", list(HOSTILE))
def test_a_workspace_file_cannot_widen_what_leaves_the_laptop(tmp_path: Path,
                                                             text: str) -> None:
    ws = make_workspace(tmp_path / "ws", text, {".env": "TOKEN=s3cret\n", "a.txt": "a"})
    out = cli("exec", "--", "sh", "-c", "env; cat .env", cwd=ws, env=ENV)
    assert out.returncode != 0 and out.stderr.count(b"\n") == 1, out.stderr
    assert HOSTILE[text].encode() in out.stderr and b"environment instead" in out.stderr
    assert b"s3cret" not in out.stdout and b"hunter2" not in out.stdout


def test_what_a_workspace_file_may_still_say(tmp_path: Path, tmp_home: Path) -> None:
    ws = make_workspace(tmp_path / "ws", 'max_min_per_day = 30\nforward_env = ["GIT*", '
                        '"DEBUG"]\n', {})
    settings = config.load(ws, environ={"DEBUG": "1"})
    assert settings.max_min_per_day == 30 and settings.forward_env == ("GIT*", "DEBUG")
    # The user's own config may raise the cap that a workspace file then stays under.
    paths.user_config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.user_config_file().write_text("max_min_per_day = 1000\n")
    (ws / ".modal-offload.toml").write_text("max_min_per_day = 500\n")
    assert config.load(ws, environ={}).max_min_per_day == 500
    (ws / ".modal-offload.toml").write_text("max_min_per_day = 5000\n")
    with pytest.raises(ConfigError, match="above your own cap"):
        config.load(ws, environ={})
