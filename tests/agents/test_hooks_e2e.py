"""Each agent's hook, fed its documented input, as configured by `agents install`; the command
it hands back is then really run through the runner and the gateway (local sandbox backend)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modal_offload.install import jsonc
from tests.helpers import cli, local_backend_env

SAMPLES = Path(__file__).parent / "samples"
# Quotes, a pipe, command substitution, stderr and a non-zero exit: all must survive.
COMMAND = """printf '%s|' "a b" 'it'"'"'s' $(echo sub) | tr a-z A-Z; echo err >&2; exit 7"""
EXPECTED_OUT, EXPECTED_ERR, EXPECTED_CODE = b"A B|IT'S|SUB|", b"err\n", 7


def sample(agent: str, command: str) -> str:
    data = json.loads((SAMPLES / f"{agent}.json").read_text())
    text = json.dumps(data).replace("__COMMAND__", json.dumps(command)[1:-1])
    json.loads(text)  # still valid
    return text


def hook_command(ws: Path, agent: str) -> list[str]:
    """The exact command line `agents install` configured for `agent`."""
    if agent == "cline":
        return [str(ws / ".clinerules" / "hooks" / "PreToolUse")]
    rel = {"claude": ".claude/settings.json", "gemini": ".gemini/settings.json",
           "codex": ".codex/hooks.json", "cursor": ".cursor/hooks.json"}[agent]
    data: Any = jsonc.loads((ws / rel).read_text())
    events = data["hooks"]
    if agent == "cursor":
        return ["sh", "-c", events["beforeShellExecution"][-1]["command"]]
    entry = events["BeforeTool" if agent == "gemini" else "PreToolUse"][-1]
    return ["sh", "-c", entry["hooks"][0]["command"]]


def run_hook(ws: Path, agent: str, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(hook_command(ws, agent), input=sample(agent, command).encode(),
                          cwd=ws, capture_output=True, timeout=30)


def run_in_agent_shell(ws: Path, command: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **local_backend_env()}
    return subprocess.run(["bash", "-c", command], cwd=ws, env=env, capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def installed(ws: Path) -> Path:
    result = cli("agents", "install", cwd=ws)
    assert result.returncode == 0, result.stdout + result.stderr
    return ws


def rewritten(agent: str, out: bytes) -> str:
    data = json.loads(out)
    if agent == "gemini":
        return str(data["hookSpecificOutput"]["tool_input"]["command"])
    spec = data["hookSpecificOutput"]
    # Codex: allow + updatedInput is its only rewrite form. Claude: no rule of the user's
    # allows the command, so Claude asks, as it would have for the original.
    assert spec["permissionDecision"] == ("allow" if agent == "codex" else "ask")
    assert spec["hookEventName"] == "PreToolUse"
    return str(spec["updatedInput"]["command"])


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini"])
def test_rewriting_hooks_route_through_the_runner(installed: Path, agent: str,
                                                  tmp_home: Path) -> None:
    result = run_hook(installed, agent, COMMAND)
    assert result.returncode == 0, result.stderr
    command = rewritten(agent, result.stdout)
    runner = str(tmp_home / ".local" / "bin" / "modal-agent-runner")
    assert shlex.split(command) == [runner, "-c", COMMAND]
    if agent != "gemini":  # the other fields of the tool input are kept
        original = json.loads(sample(agent, COMMAND))["tool_input"]
        updated = json.loads(result.stdout)["hookSpecificOutput"]["updatedInput"]
        assert {k: v for k, v in updated.items() if k != "command"} == \
            {k: v for k, v in original.items() if k != "command"}
    ran = run_in_agent_shell(installed, command)
    assert (ran.stdout, ran.returncode) == (EXPECTED_OUT, EXPECTED_CODE), ran.stderr
    assert ran.stderr.endswith(EXPECTED_ERR)


@pytest.mark.parametrize("agent", ["cursor", "cline"])
def test_block_only_hooks_name_the_exact_runner_command(installed: Path, agent: str) -> None:
    result = run_hook(installed, agent, COMMAND)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    if agent == "cursor":
        assert data["permission"] == "deny"
        message = data["agent_message"]
    else:
        assert data["cancel"] is True
        message = data["errorMessage"]
    command = message.split("Run instead: ", 1)[1]
    ran = run_in_agent_shell(installed, command)
    assert (ran.stdout, ran.returncode) == (EXPECTED_OUT, EXPECTED_CODE), ran.stderr


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "cursor", "cline"])
def test_runner_commands_pass_unchanged(installed: Path, agent: str, tmp_home: Path) -> None:
    runner = tmp_home / ".local" / "bin" / "modal-agent-runner"
    result = run_hook(installed, agent, f"{runner} -c 'echo hi'")
    assert result.returncode == 0
    assert result.stdout.strip() in (b"", b"{}", b'{"cancel": false}')


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "cursor", "cline"])
def test_git_stays_local(installed: Path, agent: str) -> None:
    result = run_hook(installed, agent, "git status --short")
    assert result.returncode == 0
    assert result.stdout.strip() in (b"", b"{}", b'{"cancel": false}')


def assert_blocked(agent: str, result: subprocess.CompletedProcess[bytes], why: bytes) -> None:
    if agent == "claude":
        data = json.loads(result.stdout)["hookSpecificOutput"]
        assert data["permissionDecision"] == "deny" and why in data[
            "permissionDecisionReason"].encode()
    elif agent in ("codex", "gemini"):
        assert result.returncode == 2 and why in result.stderr
    elif agent == "cursor":
        data = json.loads(result.stdout)
        assert data["permission"] == "deny" and why in data["agent_message"].encode()
    else:
        data = json.loads(result.stdout)
        assert data["cancel"] is True and why in data["errorMessage"].encode()


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "cursor", "cline"])
def test_missing_or_broken_runner_blocks(installed: Path, agent: str, tmp_home: Path) -> None:
    runner = tmp_home / ".local" / "bin" / "modal-agent-runner"
    runner.chmod(0o644)
    assert_blocked(agent, run_hook(installed, agent, "ls"), b"not executable")
    runner.unlink()
    assert_blocked(agent, run_hook(installed, agent, "ls"), b"is missing")


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "cursor", "cline"])
def test_bad_input_blocks(installed: Path, agent: str) -> None:
    result = subprocess.run(hook_command(installed, agent), input=b"{not json", cwd=installed,
                            capture_output=True, timeout=30)
    assert_blocked(agent, result, b"JSONDecodeError")


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "cursor"])
def test_missing_interpreter_blocks_with_exit_2(installed: Path, agent: str) -> None:
    argv = hook_command(installed, agent)
    argv[-1] = argv[-1].replace(argv[-1].split()[0], "/nonexistent/python", 1)
    result = subprocess.run(argv, input=sample(agent, "ls").encode(), cwd=installed,
                            capture_output=True, timeout=30)
    assert result.returncode == 2  # "block" in all four agents' schemas


def test_cline_script_without_interpreter_cancels(installed: Path) -> None:
    script = installed / ".clinerules" / "hooks" / "PreToolUse"
    script.write_text(script.read_text().replace(
        script.read_text().split("\n")[3].split()[0], "/nonexistent/python", 1))
    result = subprocess.run([str(script)], input=sample("cline", "ls").encode(),
                            capture_output=True, timeout=30)
    assert json.loads(result.stdout.splitlines()[-1])["cancel"] is True


# What a cloned repository or a remote command (through sync back) can put in the workspace:
# modules named like the standard library's, which `python -m` would import from the
# working folder (or from a PYTHONPATH a project points at itself) instead.
SHADOWS = ("json", "logging", "socket", "re", "shlex", "argparse", "subprocess", "pathlib")


def plant_shadows(folder: Path) -> Path:
    canary = folder / "PWNED"
    for name in SHADOWS:
        (folder / f"{name}.py").write_text(
            f"open({str(canary)!r}, 'a').write({name!r})\nraise SystemExit(0)\n")
    return canary


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "cursor", "cline"])
def test_workspace_modules_never_run_in_the_hook(installed: Path, agent: str) -> None:
    canary = plant_shadows(installed)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(hook_command(installed, agent), input=sample(agent, "ls").encode(),
                            cwd=installed, env=env, capture_output=True, timeout=30)
    assert not canary.exists(), canary.read_text()
    assert result.returncode == 0, result.stderr
    assert b"modal-agent-runner" in result.stdout  # routed as usual
