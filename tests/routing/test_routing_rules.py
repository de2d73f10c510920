"""The local-only rules and `modal-offload route`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modal_offload import config, routing
from tests.helpers import cli


@pytest.mark.parametrize("name", ["git", "sudo", "make", "ssh", "rsync", "modal", "vim",
                                  "nvim", "nano", "emacs", "xdg-open", "open", "code", "cursor",
                                  "bash", "zsh", "sh", "cd", "[", "true", "modal-offload",
                                  "modal-agent-runner", "/usr/bin/git"])
def test_local_only_defaults(name: str) -> None:
    assert routing.static_decision(name, config.Settings()).where == "local"


@pytest.mark.parametrize("name", ["python3", "ls", "/bin/ls", "pytest", "printenv", "node"])
def test_everything_else_is_remote(name: str) -> None:
    decision = routing.static_decision(name, config.Settings())
    assert (decision.where, decision.rule) == ("remote", "default-remote")


def test_settings_extend_and_shrink_the_list() -> None:
    settings = config.Settings(local_only=("python3",), remote_always=("make",))
    assert routing.decide("python3", settings, environ={}).rule == "user-local-only"
    assert routing.decide("make", settings, environ={}).where == "remote"
    # Our own CLI can never be routed: it would recurse.
    assert routing.decide("modal-offload", config.Settings(remote_always=("modal-offload",)),
                          environ={}).where == "local"


def test_runtime_rules_keep_commands_local() -> None:
    settings = config.Settings()
    assert routing.decide("ls", settings, environ={"MODAL_OFFLOAD_REMOTE": "1"}).rule == \
        "inside-remote"
    assert routing.decide("ls", settings, environ={"MODAL_OFFLOAD_BYPASS": "1"}).rule == "bypass"
    assert routing.decide("ls", settings, in_workspace=False, environ={}).rule == \
        "outside-workspace"


def test_route_command_text_and_json(ws: Path) -> None:
    out = cli("route", "git", "status", cwd=ws)
    assert out.returncode == 0
    assert out.stdout.decode().startswith("git: local (default-local-only:control-plane")
    out = cli("route", "--json", "--", "python3", "-c", "x", cwd=ws,
              env={"MODAL_OFFLOAD_LOCAL_ONLY": "python3"})
    data = json.loads(out.stdout)
    assert (data["where"], data["rule"]) == ("local", "user-local-only")
    assert "MODAL_OFFLOAD_LOCAL_ONLY" in data["why"]


def test_route_reads_the_workspace_file(tmp_path: Path) -> None:
    from tests.helpers import make_workspace

    ws = make_workspace(tmp_path / "w", '[routing]\nlocal_only = ["node"]\nremote = ["git"]\n')
    assert json.loads(cli("route", "--json", "node", cwd=ws).stdout)["where"] == "local"
    assert json.loads(cli("route", "--json", "git", cwd=ws).stdout)["where"] == "remote"


def test_route_without_command_is_bad_input(ws: Path) -> None:
    out = cli("route", cwd=ws)
    assert out.returncode == 2
    assert b"Traceback" not in out.stderr


def test_route_says_how_the_agent_hook_treats_commands_that_run_commands(ws: Path) -> None:
    out = cli("route", "bash", "-c", "pytest", cwd=ws).stdout.decode()
    assert out.startswith("bash: local (default-local-only:shell")
    assert "an agent hook routes `bash ...` like the command it runs" in out
    assert "note:" not in cli("route", "git", "status", cwd=ws).stdout.decode()
